/**
 * Flotilla's public API: `import { Flotilla } from 'flotilla'`.
 */
import { EmbeddedStore, type OpenOptions } from './store.js';

export { ErrorCode, FlotillaError, isFlotillaError } from '../engine/errors.js';
export type { ShardTxn, UserCommand } from '../engine/state/exec.js';
export type { Key } from './keys.js';
export type { EmbeddedStore, OpenOptions } from './store.js';
export type * from './types.js';

/** Entry points of Flotilla. */
export const Flotilla = {
  /** Opens (or creates) an embedded store in `options.dir`: one node, many shards, no network. */
  open(options: OpenOptions): Promise<EmbeddedStore> {
    return EmbeddedStore.open(options);
  },
};
