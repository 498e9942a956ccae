/**
 * When the state reaches the disk.
 *
 * The Raft log is the durable record of every committed entry, so applying need not fsync: with
 * `durability: 'deferred'` LMDB commits without syncing (noSync). A process crash loses nothing
 * (committed pages are in the OS page cache) and a replay skips entries at or below each shard's
 * applied index. An operating-system crash, however, can lose recent commits or, because LMDB
 * then cannot order its page writes, tear the file in ways LMDB cannot detect. So before the
 * first unsynced commit this module writes (and fsyncs) a marker file naming the current boot;
 * `flush()` syncs LMDB and removes the marker. Opening a directory whose marker names another
 * boot fails with CORRUPT_STATE: the node must discard the state and recover it from a snapshot.
 * The host must not compact its log past an applied index that `flush()` has not made durable.
 *
 * With `durability: 'sync'` every commit is fsynced: slower, and safe against any crash.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { uptime } from 'node:os';
import { join } from 'node:path';
import { FlotillaError } from '../errors.js';

/** How commits reach the disk; see the module comment. */
export type Durability = 'sync' | 'deferred';

/** Name of the marker file inside the state directory. HARD. */
export const unsyncedMarkerName = 'unsynced.json';

/** Two boot-time estimates closer than this belong to the same boot. */
const bootTimeSlackSec = 120;

interface BootMark {
  bootId: string | null;
  bootTimeSec: number;
}

function currentBoot(): BootMark {
  let bootId: string | null = null;
  try {
    bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    // Not Linux: the boot time estimate below is the only evidence.
    bootId = null;
  }
  return { bootId, bootTimeSec: Math.round(Date.now() / 1000 - uptime()) };
}

function sameBoot(a: BootMark, b: BootMark): boolean {
  if (a.bootId !== null && b.bootId !== null) return a.bootId === b.bootId;
  return Math.abs(a.bootTimeSec - b.bootTimeSec) < bootTimeSlackSec;
}

/** Tracks whether the state directory holds commits that are not yet on disk. */
export class UnsyncedMarker {
  private readonly path: string;
  /** True while the marker file exists. */
  private present: boolean;
  /** Counts commits, so that a flush knows whether a commit raced with it. */
  private commits = 0;

  /** Refuses a directory left unsynced by a previous boot (see the module comment). */
  constructor(private readonly dir: string) {
    this.path = join(dir, unsyncedMarkerName);
    this.present = existsSync(this.path);
    if (!this.present) return;
    let mark: BootMark;
    try {
      mark = JSON.parse(readFileSync(this.path, 'utf8')) as BootMark;
    } catch (err) {
      throw new FlotillaError('CORRUPT_STATE', `unreadable marker ${this.path}`, {
        file: this.path,
        cause: err,
      });
    }
    if (!sameBoot(mark, currentBoot())) {
      throw new FlotillaError(
        'CORRUPT_STATE',
        `${dir} holds commits that were not synced before the machine restarted; LMDB may be ` +
          'torn. Delete the state directory: the node recovers it from a snapshot and its log',
        { file: this.path },
      );
    }
  }

  /** Called before each unsynced commit: the marker must be durable before the commit is. */
  beforeCommit(): void {
    this.commits += 1;
    if (this.present) return;
    const fd = openSync(this.path, 'w');
    try {
      writeFileSync(fd, JSON.stringify(currentBoot()));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    syncDir(this.dir);
    this.present = true;
  }

  /** Runs `sync` (which makes every commit so far durable) and clears the marker if no commit
   *  happened meanwhile. */
  async flush(sync: () => Promise<void>): Promise<void> {
    if (!this.present) return;
    const seen = this.commits;
    await sync();
    if (this.commits !== seen || !this.present) return;
    unlinkSync(this.path);
    syncDir(this.dir);
    this.present = false;
  }
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
