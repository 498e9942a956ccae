/**
 * Shared fixtures of the state machine tests: real LMDB environments in temporary directories.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open as openLmdb } from 'lmdb';
import { afterEach } from 'vitest';
import type { ApplyItem } from '../../../engine/state/apply.js';
import { type Command, encodeCommand } from '../../../engine/state/commands.js';
import { KvState, type KvStateOptions } from '../../../engine/state/kv-state.js';

const dirs: string[] = [];
const open: KvState[] = [];

afterEach(async () => {
  for (const state of open.splice(0)) await state.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh directory, removed after the test. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-state-'));
  dirs.push(dir);
  return dir;
}

/** Opens a KvState (in a fresh directory unless `dir` is given), closed after the test. */
export function openState(options: Partial<KvStateOptions> = {}): KvState {
  const state = KvState.open({ dir: options.dir ?? tempDir(), ...options });
  open.push(state);
  return state;
}

/** Closes a state opened with openState before the test ends. */
export async function closeState(state: KvState): Promise<void> {
  const at = open.indexOf(state);
  if (at >= 0) open.splice(at, 1);
  await state.close();
}

/** An entry carrying `command`. */
export function entry(shard: number, index: number, command: Command, term = 1): ApplyItem {
  return { shard, index, term, data: encodeCommand(command) };
}

/** Feeds commands to one shard as consecutive entries after its applied index. */
export class ShardFeeder {
  constructor(
    readonly state: KvState,
    readonly shard: number,
  ) {}

  /** Applies one command as the next entry; returns its result. */
  apply(command: Command) {
    const index = this.state.appliedIndex(this.shard) + 1;
    const [result] = this.state.applyBatch([entry(this.shard, index, command)]);
    return result!;
  }
}

/**
 * A state directory whose format marker names `version`, holding also the (empty) databases
 * `extraDbs` — how a directory of another format looks to KvState.open.
 */
export async function stateDirOfFormat(version: number, extraDbs: string[] = []): Promise<string> {
  const dir = tempDir();
  const env = openLmdb({ path: dir });
  const system = env.openDB({ name: 'system', keyEncoding: 'binary', encoding: 'binary' });
  for (const name of extraDbs) env.openDB({ name, keyEncoding: 'binary', encoding: 'binary' });
  const marker = Buffer.alloc(18);
  Buffer.from('FLOTILLA-STATE').copy(marker);
  marker.writeUInt32BE(version, 14);
  system.putSync(Buffer.from('format'), marker);
  await env.close();
  return dir;
}

/** The error KvState.open throws for `dir` (undefined if it opens). */
export function openError(dir: string): unknown {
  try {
    open.push(KvState.open({ dir }));
  } catch (err) {
    return err;
  }
  return undefined;
}
