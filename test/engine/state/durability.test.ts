import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isFlotillaError } from '../../../engine/errors.js';
import { unsyncedMarkerName } from '../../../engine/state/durability.js';
import { KvState } from '../../../engine/state/kv-state.js';
import { closeState, entry, openState, ShardFeeder, tempDir } from './helpers.js';

const markerIn = (dir: string) => join(dir, unsyncedMarkerName);

describe('deferred durability', () => {
  it('marks the directory before the first unsynced commit and clears it on flush', async () => {
    const dir = tempDir();
    const state = openState({ dir });
    await state.flush();
    expect(existsSync(markerIn(dir))).toBe(false);
    new ShardFeeder(state, 1).apply({ type: 'put', key: 'a', value: 1 });
    expect(existsSync(markerIn(dir))).toBe(true);
    await state.flush();
    expect(existsSync(markerIn(dir))).toBe(false);
    new ShardFeeder(state, 1).apply({ type: 'put', key: 'a', value: 2 });
    await closeState(state);
    expect(existsSync(markerIn(dir))).toBe(false);
  });

  it('survives a process crash: the committed state is there and a replay is skipped', async () => {
    const dir = tempDir();
    const state = openState({ dir });
    const items = [1, 2, 3].map((i) => entry(1, i, { type: 'incr', key: 'n', by: 1 }));
    state.applyBatch(items);
    // A copy of the files right after the commit is what a SIGKILL leaves: committed pages are in
    // the page cache, nothing was synced, the marker names this boot.
    const crashed = tempDir();
    for (const name of ['data.mdb', unsyncedMarkerName]) {
      copyFileSync(join(dir, name), join(crashed, name));
    }
    const recovered = openState({ dir: crashed });
    expect(recovered.get(1, 'n')).toEqual({ value: 3, version: 3 });
    expect(recovered.applyBatch(items).map((r) => r.type)).toEqual([
      'skipped',
      'skipped',
      'skipped',
    ]);
    expect(recovered.checksum(1)).toBe(state.checksum(1));
  });

  it('refuses a directory left unsynced by an earlier boot of the machine', () => {
    const dir = tempDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(markerIn(dir), JSON.stringify({ bootId: 'another-boot', bootTimeSec: 0 }));
    let error: unknown;
    try {
      KvState.open({ dir });
    } catch (err) {
      error = err;
    }
    expect(isFlotillaError(error, 'CORRUPT_STATE')).toBe(true);
    expect((error as Error).message).toMatch(/Delete the state directory/);
    expect(readFileSync(markerIn(dir), 'utf8')).toContain('another-boot');
  });

  it('sync durability writes no marker', async () => {
    const dir = tempDir();
    const state = openState({ dir, durability: 'sync' });
    new ShardFeeder(state, 1).apply({ type: 'put', key: 'a', value: 1 });
    expect(existsSync(markerIn(dir))).toBe(false);
    await closeState(state);
    expect(openState({ dir }).get(1, 'a')?.value).toBe(1);
  });
});
