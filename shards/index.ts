/**
 * Flotilla's public API: `import { Flotilla } from 'flotilla'`.
 */
import { type ConnectOptions, RemoteStore } from './client/remote.js';
import { ClusterNode, type ClusterNodeOptions } from './cluster-node.js';
import { EmbeddedStore, type OpenOptions } from './store.js';

export { ErrorCode, FlotillaError, isFlotillaError } from '../engine/errors.js';
export type { ShardTxn, UserCommand } from '../engine/state/exec.js';
export type { ClientTls, ConnectOptions, RemoteStore } from './client/remote.js';
export type {
  ClientServer,
  ClientServerOptions,
  ClientServerTls,
  ServableNode,
} from './client/server.js';
export { serveNodeClients, startClientServer } from './client/server.js';
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
   * `options.nodeId` of `options.config` (a parsed cluster config or the path of cluster.json),
   * serving `Flotilla.connect` clients on its client address.
   */
  start(options: ClusterNodeOptions): Promise<ClusterNode> {
    return ClusterNode.start(options);
  },
  /**
   * Connects to a cluster through the client endpoints ("host:port") of any of its nodes: the
   * same API as the embedded store, routed to each shard's leader.
   */
  connect(endpoints: string[], options: ConnectOptions): Promise<RemoteStore> {
    return RemoteStore.connect(endpoints, options);
  },
};
