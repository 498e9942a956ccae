/**
 * Test support for the client protocol: a real single-node store (NodeHost, SegmentedLog and
 * KvState in a temp dir) served by a real client server on 127.0.0.1, and clients connected to
 * it over real sockets.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger, LogLevel } from '../../../engine/transport/transport.js';
import type { ConnectOptions, RemoteStore } from '../../../shards/client/remote.js';
import {
  type ClientServer,
  type ClientServerOptions,
  startClientServer,
} from '../../../shards/client/server.js';
import { Flotilla } from '../../../shards/index.js';
import type { EmbeddedStore } from '../../../shards/store.js';

/** The cluster id and secret the tests share. */
export const clusterId = 'client-test';
export const secret = 'a client test secret of enough bytes';

/** One captured log line. */
export interface LogLine {
  level: LogLevel;
  msg: string;
  fields: Record<string, unknown> | undefined;
}

/** A logger that keeps its lines for assertions. */
export function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  return { logger: (level, msg, fields) => lines.push({ level, msg, fields }), lines };
}

/** A served single-node store and everything to clean up after it. */
export interface Served {
  store: EmbeddedStore;
  server: ClientServer;
  endpoint: string;
  lines: LogLine[];
  connect(options?: Partial<ConnectOptions>): Promise<RemoteStore>;
  close(): Promise<void>;
}

/** Opens a store in a temp dir and serves it to clients. */
export async function serveStore(
  shards = 8,
  options: Partial<ClientServerOptions> = {},
): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-client-'));
  const store = await Flotilla.open({ dir, shards });
  const { logger, lines } = captureLogger();
  const server = await startClientServer({
    service: store.nodeService,
    port: 0,
    clusterId,
    secret,
    logger,
    ...options,
  });
  const endpoint = `127.0.0.1:${server.address.port}`;
  const clients: RemoteStore[] = [];
  return {
    store,
    server,
    endpoint,
    lines,
    async connect(connectOptions = {}) {
      const client = await Flotilla.connect([endpoint], { secret, clusterId, ...connectOptions });
      clients.push(client);
      return client;
    },
    async close() {
      for (const c of clients) await c.close();
      await server.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The error code of a call (or 'ok'). */
export async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
    return 'ok';
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? code : `untyped: ${String(err)}`;
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
