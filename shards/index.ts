/**
 * Flotilla's public API: `import { Flotilla } from 'flotilla'`.
 */
import { type ConnectOptions, RemoteStore } from './client/remote.js';
import { EmbeddedStore, type OpenOptions } from './store.js';

export { ErrorCode, FlotillaError, isFlotillaError } from '../engine/errors.js';
export type { ShardTxn, UserCommand } from '../engine/state/exec.js';
export type { ClientTls, ConnectOptions, RemoteStore } from './client/remote.js';
export type { ClientServer, ClientServerOptions, ServableNode } from './client/server.js';
export { serveNodeClients, startClientServer } from './client/server.js';
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
   * Connects to a cluster through the client endpoints ("host:port") of any of its nodes: the
   * same API as the embedded store, routed to each shard's leader.
   */
  connect(endpoints: string[], options: ConnectOptions): Promise<RemoteStore> {
    return RemoteStore.connect(endpoints, options);
  },
};
