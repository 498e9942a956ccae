/**
 * The Raft consensus core of one group: the public surface of engine/raft. The host (engine/
 * host.ts) drives one RaftNode per group; see raft-node.ts for behaviour and ready.ts for the
 * Ready/advance contract.
 */
export { RaftAssertionError } from './assert.js';
export {
  applyConfChangeTo,
  ConfChangeDecodeError,
  decodeConfChange,
  encodeConfChange,
  isJoint,
  leaveJointConfChange,
  singleConfChange,
} from './conf-change.js';
export { RaftNode } from './raft-node.js';
export type * from './ready.js';
export {
  copyConfState,
  entryBytes,
  entryOverheadBytes,
  type InitialState,
  MemoryRaftStorage,
  type RaftStorage,
} from './storage.js';
export * from './types.js';
