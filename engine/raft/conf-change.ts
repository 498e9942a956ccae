/**
 * Membership changes: the binary encoding of a ConfChange inside an entry, and the pure function
 * that applies one to a ConfState (etcd's confchange.Changer, simplified to whole configurations).
 *
 * Encoding (all little-endian), version 1:
 *
 * | offset  | size | field                                                         |
 * |--------:|-----:|---------------------------------------------------------------|
 * |       0 |    1 | version: 1                                                    |
 * |       1 |    1 | transition: 0 auto, 1 joint-auto-leave, 2 joint-explicit      |
 * |       2 |    2 | count: number of single changes (u16)                         |
 * | 4 + 5k  |    1 | change k type: 1 addVoter, 2 removeVoter, 3 addLearner        |
 * | 5 + 5k  |    4 | change k node id (u32, > 0)                                   |
 *
 * Entries are durable, so this layout is a hard format: only add versions, never change one.
 */
import type { ConfChange, ConfChangeSingle, ConfState, NodeId } from './types.js';

/** Version byte of the encoding. */
export const confChangeVersion = 1;
/** Most single changes one ConfChange may carry (the count field is a u16). */
export const confChangeSinglesMax = 0xffff;

const transitions = ['auto', 'joint-auto-leave', 'joint-explicit'] as const;
const changeTypes = [undefined, 'addVoter', 'removeVoter', 'addLearner'] as const;

/** A ConfChange that cannot be decoded: the bytes are not one this version wrote. */
export class ConfChangeDecodeError extends Error {
  constructor(message: string) {
    super(`malformed conf change: ${message}`);
    this.name = 'ConfChangeDecodeError';
  }
}

/** Encodes a ConfChange for an entry's data. */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  if (cc.changes.length > confChangeSinglesMax) {
    throw new RangeError(`a conf change carries at most ${confChangeSinglesMax} single changes`);
  }
  const out = new Uint8Array(4 + 5 * cc.changes.length);
  const view = new DataView(out.buffer);
  out[0] = confChangeVersion;
  out[1] = transitions.indexOf(cc.transition);
  view.setUint16(2, cc.changes.length, true);
  cc.changes.forEach((c, k) => {
    if (!Number.isInteger(c.node) || c.node <= 0 || c.node > 0xffffffff) {
      throw new RangeError(`conf change node id ${c.node} is not a u32 > 0`);
    }
    out[4 + 5 * k] = changeTypes.indexOf(c.type);
    view.setUint32(5 + 5 * k, c.node, true);
  });
  return out;
}

/** Decodes a ConfChange written by encodeConfChange; throws ConfChangeDecodeError if malformed. */
export function decodeConfChange(data: Uint8Array): ConfChange {
  if (data.byteLength < 4) throw new ConfChangeDecodeError(`${data.byteLength} bytes`);
  if (data[0] !== confChangeVersion) throw new ConfChangeDecodeError(`version ${data[0]}`);
  const transition = transitions[data[1]!];
  if (transition === undefined) throw new ConfChangeDecodeError(`transition ${data[1]}`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const count = view.getUint16(2, true);
  if (data.byteLength !== 4 + 5 * count) {
    throw new ConfChangeDecodeError(`${data.byteLength} bytes for ${count} changes`);
  }
  const changes: ConfChangeSingle[] = [];
  for (let k = 0; k < count; k++) {
    const type = changeTypes[data[4 + 5 * k]!];
    if (type === undefined) throw new ConfChangeDecodeError(`change type ${data[4 + 5 * k]}`);
    const node = view.getUint32(5 + 5 * k, true);
    if (node === 0) throw new ConfChangeDecodeError('node id 0');
    changes.push({ type, node });
  }
  return { changes, transition };
}

/** A ConfChange of one single step (applied directly, without joint consensus). */
export function singleConfChange(type: ConfChangeSingle['type'], node: NodeId): ConfChange {
  return { changes: [{ type, node }], transition: 'auto' };
}

/** The ConfChange that leaves a joint configuration. */
export function leaveJointConfChange(): ConfChange {
  return { changes: [], transition: 'auto' };
}

/** Whether a configuration is joint (two voter sets must agree). */
export function isJoint(conf: ConfState): boolean {
  return conf.votersOutgoing.length > 0;
}

/** The outcome of applying a ConfChange: the new membership, or why it cannot apply. */
export type ConfChangeResult = { ok: true; conf: ConfState } | { ok: false; error: string };

function without(list: NodeId[], id: NodeId): NodeId[] {
  return list.includes(id) ? list.filter((x) => x !== id) : list;
}

function withId(list: NodeId[], id: NodeId): NodeId[] {
  return list.includes(id) ? list : [...list, id].sort((a, b) => a - b);
}

/** Whether the ConfChange would leave a joint configuration. */
export function leavesJoint(cc: ConfChange): boolean {
  return cc.changes.length === 0;
}

/**
 * Applies a ConfChange to `conf` without touching it. A single change (transition 'auto', at
 * most one voter added or removed) applies directly; anything else enters a joint configuration
 * (incoming = the changed voters, outgoing = the old voters); an empty change list leaves it.
 */
export function applyConfChangeTo(conf: ConfState, cc: ConfChange): ConfChangeResult {
  if (leavesJoint(cc)) {
    if (!isJoint(conf)) return { ok: false, error: 'not in a joint configuration' };
    const learners = conf.learnersNext.reduce(withId, conf.learners.slice());
    return {
      ok: true,
      conf: {
        voters: conf.voters.slice(),
        votersOutgoing: [],
        learners,
        learnersNext: [],
        autoLeave: false,
      },
    };
  }
  if (isJoint(conf)) return { ok: false, error: 'already in a joint configuration' };
  const next: ConfState = {
    voters: conf.voters.slice(),
    votersOutgoing: [],
    learners: conf.learners.slice(),
    learnersNext: [],
    autoLeave: false,
  };
  const joint = cc.transition !== 'auto' || votersChanged(conf, cc) > 1;
  if (joint) {
    next.votersOutgoing = conf.voters.slice();
    next.autoLeave = cc.transition !== 'joint-explicit';
  }
  for (const change of cc.changes) applySingle(next, change);
  if (next.voters.length === 0) return { ok: false, error: 'removes every voter' };
  return { ok: true, conf: next };
}

/** How many voters a change list adds or removes (etcd's symdiff of the voter sets). */
function votersChanged(conf: ConfState, cc: ConfChange): number {
  const scratch: ConfState = {
    ...conf,
    voters: conf.voters.slice(),
    learners: conf.learners.slice(),
  };
  for (const change of cc.changes) applySingle(scratch, change);
  let diff = 0;
  for (const id of scratch.voters) if (!conf.voters.includes(id)) diff++;
  for (const id of conf.voters) if (!scratch.voters.includes(id)) diff++;
  return diff;
}

function applySingle(conf: ConfState, change: ConfChangeSingle): void {
  const id = change.node;
  switch (change.type) {
    case 'addVoter':
      conf.learners = without(conf.learners, id);
      conf.learnersNext = without(conf.learnersNext, id);
      conf.voters = withId(conf.voters, id);
      break;
    case 'addLearner':
      conf.voters = without(conf.voters, id);
      conf.learners = without(conf.learners, id);
      conf.learnersNext = without(conf.learnersNext, id);
      // A voter of the outgoing configuration keeps voting there until the joint config is left.
      if (conf.votersOutgoing.includes(id)) conf.learnersNext = withId(conf.learnersNext, id);
      else conf.learners = withId(conf.learners, id);
      break;
    case 'removeVoter':
      conf.voters = without(conf.voters, id);
      conf.learners = without(conf.learners, id);
      conf.learnersNext = without(conf.learnersNext, id);
      break;
  }
}
