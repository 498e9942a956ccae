/**
 * Flotilla's public API: `import { Flotilla } from 'flotilla'`.
 */
import { ClusterNode, type ClusterNodeOptions } from './cluster-node.js';
import { EmbeddedStore, type OpenOptions } from './store.js';

export { ErrorCode, FlotillaError, isFlotillaError } from '../engine/errors.js';
export type { ShardTxn, UserCommand } from '../engine/state/exec.js';
export type { ClusterConfig, NodeConfig } from './cluster-config.js';
export type {
  ClusterNode,
  ClusterNodeOptions,
  ClusterNodeTuning,
  ShardStatus,
} from './cluster-node.js';
export type { Key } from './keys.js';
export type { NodeService, ShardMap } from './node-service.js';
export type { EmbeddedStore, OpenOptions } from './store.js';
export type * from './types.js';

/** Entry points of Flotilla. */
export const Flotilla = {
  /** Opens (or creates) an embedded store in `options.dir`: one node, many shards, no network. */
  open(options: OpenOptions): Promise<EmbeddedStore> {
    return EmbeddedStore.open(options);
  },
  /**
   * Starts one node of a cluster inside this process, as `flotilla serve` does: the node
   * `options.nodeId` of `options.config` (a parsed cluster config or the path of cluster.json).
   */
  start(options: ClusterNodeOptions): Promise<ClusterNode> {
    return ClusterNode.start(options);
  },
};
