/**
 * A fault-injecting file system, entirely in memory and deterministic (seeded): the LogFs the
 * log tests and the cluster simulator run on.
 *
 * It keeps, per file, the bytes a reader sees and the bytes that are durable, with the writes
 * and truncations since the last fdatasync in between; and per directory, the entries a reader
 * sees and the durable ones, with the creates, renames and unlinks since the last directory
 * fsync. `crash()` models a power loss: each file keeps its durable bytes plus a random prefix
 * of its unsynced operations, the first write after that prefix being lost or torn at a random
 * byte (a prefix of it survives, maybe followed by garbage); each directory keeps its durable
 * entries plus a random subset of its unsynced operations (POSIX orders none of them before an
 * fsync of the directory), each one atomic. It returns the file system of the restarted
 * machine; the old one fails every call, like the processes that died. mkdir is durable at once.
 *
 * Errors can be injected (`failNext`): the chosen call fails with the given code and no effect.
 * A failed fdatasync also forgets the unsynced writes it should have saved, as Linux does (the
 * pages are marked clean), so a later successful fdatasync does not save them.
 *
 * No timers: every call awaits `delay(op, path)` (one microtask by default), which a simulator
 * can replace with its simulated clock and a test with a gate.
 */
import { basename, dirname } from 'node:path';
import type { LogFile, LogFs } from '../../engine/log/fs.js';
import { SeededRandom } from '../../engine/random.js';

/** The calls that can be counted and failed. */
export type FaultOp =
  | 'open'
  | 'write'
  | 'read'
  | 'datasync'
  | 'truncate'
  | 'size'
  | 'close'
  | 'readdir'
  | 'mkdir'
  | 'rename'
  | 'unlink'
  | 'syncDir';

/** How to build a fault file system. */
export interface FaultFsOptions {
  /** Seed of every random choice (tears, lost directory operations, garbage). */
  seed: number;
  /** Awaited before every call takes effect; one microtask by default. */
  delay?: (op: FaultOp, path: string) => Promise<void>;
}

type FileOp =
  | { kind: 'write'; position: number; bytes: Uint8Array }
  | { kind: 'truncate'; size: number };

class Inode {
  data: Uint8Array = new Uint8Array(0);
  size = 0;
  durable: Uint8Array = new Uint8Array(0);
  durableSize = 0;
  pending: FileOp[] = [];
}

type DirOp =
  | { kind: 'link'; name: string; inode: Inode }
  | { kind: 'unlink'; name: string; inode: Inode }
  | { kind: 'rename'; from: string; to: string; inode: Inode };

class Dir {
  live = new Map<string, Inode>();
  durable = new Map<string, Inode>();
  pending: DirOp[] = [];
}

interface FaultRule {
  op: FaultOp;
  code: string;
  path: string | undefined;
  count: number;
}

function fsError(code: string, op: string, path: string): Error {
  return Object.assign(new Error(`${code}: ${op} '${path}' (fault fs)`), { code });
}

/** A growable buffer and its logical size. */
interface Sized {
  buf: Uint8Array;
  size: number;
}

/** Writes `bytes` at `position` of a growable buffer of logical size `size`. */
function put(buf: Uint8Array, size: number, position: number, bytes: Uint8Array): Sized {
  const end = position + bytes.length;
  let out = buf;
  if (end > out.length) {
    out = new Uint8Array(Math.max(end, out.length * 2));
    out.set(buf.subarray(0, size));
  }
  out.set(bytes, position);
  return { buf: out, size: Math.max(size, end) };
}

function resize(buf: Uint8Array, size: number, newSize: number): Sized {
  if (newSize <= size) {
    buf.fill(0, newSize, size);
    return { buf, size: newSize };
  }
  if (newSize <= buf.length) return { buf, size: newSize };
  const out = new Uint8Array(Math.max(newSize, buf.length * 2));
  out.set(buf.subarray(0, size));
  return { buf: out, size: newSize };
}

/** The machine's disk: survives crashes, shared by the file systems of successive boots. */
class FaultDisk {
  readonly dirs = new Map<string, Dir>();
  readonly random: SeededRandom;
  readonly counts = new Map<FaultOp, number>();
  rules: FaultRule[] = [];
  boot = 0;

  constructor(seed: number) {
    this.random = new SeededRandom(seed);
  }

  dir(path: string): Dir | undefined {
    return this.dirs.get(path);
  }

  crash(): void {
    this.boot++;
    const inodes = new Set<Inode>();
    for (const dir of this.dirs.values()) {
      const state = new Map(dir.durable);
      for (const op of dir.pending) if (this.random.chance(0.5)) applyDirOp(state, op);
      dir.durable = state;
      dir.live = new Map(state);
      dir.pending = [];
      for (const inode of state.values()) inodes.add(inode);
    }
    for (const inode of inodes) this.crashFile(inode);
  }

  private crashFile(inode: Inode): void {
    const kept = this.random.intBelow(inode.pending.length + 1);
    let durable: Sized = { buf: inode.durable, size: inode.durableSize };
    for (let k = 0; k < inode.pending.length && k <= kept; k++) {
      const op = inode.pending[k]!;
      if (op.kind === 'truncate') {
        if (k < kept) durable = resize(durable.buf, durable.size, op.size);
        continue;
      }
      let bytes = op.bytes;
      if (k === kept) bytes = this.random.chance(0.5) ? this.tear(bytes) : bytes.subarray(0, 0);
      if (bytes.length > 0) durable = put(durable.buf, durable.size, op.position, bytes);
    }
    inode.durable = durable.buf;
    inode.durableSize = durable.size;
    inode.data = durable.buf.slice();
    inode.size = durable.size;
    inode.pending = [];
  }

  /** A torn write: a random prefix, then maybe a few garbage bytes. */
  private tear(bytes: Uint8Array): Uint8Array {
    const prefix = this.random.intBelow(bytes.length + 1);
    const garbage = this.random.chance(0.5)
      ? this.random.intBelow(Math.min(64, bytes.length - prefix) + 1)
      : 0;
    const out = bytes.slice(0, prefix + garbage);
    for (let i = prefix; i < out.length; i++) out[i] = this.random.intBelow(256);
    return out;
  }
}

function applyDirOp(state: Map<string, Inode>, op: DirOp): void {
  switch (op.kind) {
    case 'link':
      if (!state.has(op.name)) state.set(op.name, op.inode);
      return;
    case 'unlink':
      if (state.get(op.name) === op.inode) state.delete(op.name);
      return;
    case 'rename':
      if (state.get(op.from) !== op.inode) return;
      state.delete(op.from);
      state.set(op.to, op.inode);
      return;
  }
}

class FaultFile implements LogFile {
  private open = true;

  constructor(
    private readonly fs: FaultFs,
    private readonly inode: Inode,
    private readonly path: string,
  ) {}

  async write(data: Uint8Array, position: number): Promise<void> {
    await this.enter('write');
    const bytes = data.slice();
    const next = put(this.inode.data, this.inode.size, position, bytes);
    this.inode.data = next.buf;
    this.inode.size = next.size;
    this.inode.pending.push({ kind: 'write', position, bytes });
  }

  async read(into: Uint8Array, position: number): Promise<number> {
    await this.enter('read');
    return this.readNow(into, position);
  }

  readSync(into: Uint8Array, position: number): number {
    this.fs.check('read', this.path);
    this.checkOpen();
    return this.readNow(into, position);
  }

  async datasync(): Promise<void> {
    const inode = this.inode;
    try {
      await this.enter('datasync');
    } catch (err) {
      if (this.fs.alive) inode.pending = [];
      throw err;
    }
    let durable: Sized = { buf: inode.durable, size: inode.durableSize };
    for (const op of inode.pending) {
      durable =
        op.kind === 'write'
          ? put(durable.buf, durable.size, op.position, op.bytes)
          : resize(durable.buf, durable.size, op.size);
    }
    inode.durable = durable.buf;
    inode.durableSize = durable.size;
    inode.pending = [];
  }

  /** A write then a fdatasync, each with its own faults: a crash between them loses the write. */
  async writeDurable(data: Uint8Array, position: number): Promise<void> {
    await this.write(data, position);
    await this.datasync();
  }

  async truncate(size: number): Promise<void> {
    await this.enter('truncate');
    const next = resize(this.inode.data, this.inode.size, size);
    this.inode.data = next.buf;
    this.inode.size = next.size;
    this.inode.pending.push({ kind: 'truncate', size });
  }

  async size(): Promise<number> {
    await this.enter('size');
    return this.inode.size;
  }

  async close(): Promise<void> {
    await this.enter('close');
    this.open = false;
  }

  private async enter(op: FaultOp): Promise<void> {
    await this.fs.delay(op, this.path);
    this.fs.check(op, this.path);
    this.checkOpen();
  }

  private checkOpen(): void {
    if (!this.open) throw fsError('EBADF', 'use of a closed file', this.path);
  }

  private readNow(into: Uint8Array, position: number): number {
    const n = Math.max(0, Math.min(into.length, this.inode.size - position));
    into.set(this.inode.data.subarray(position, position + n));
    return n;
  }
}

/** The file system of one boot of the machine; see the module comment. */
export class FaultFs implements LogFs {
  readonly delay: (op: FaultOp, path: string) => Promise<void>;
  private readonly disk: FaultDisk;
  private readonly boot: number;

  constructor(options: FaultFsOptions, disk?: FaultDisk) {
    this.disk = disk ?? new FaultDisk(options.seed);
    this.boot = this.disk.boot;
    this.delay = options.delay ?? (() => Promise.resolve());
  }

  /** Whether this is the file system of the running boot (not one that crashed). */
  get alive(): boolean {
    return this.boot === this.disk.boot;
  }

  /** Loses power: returns the file system of the restarted machine (see the module comment). */
  crash(): FaultFs {
    this.disk.crash();
    return new FaultFs({ seed: 0, delay: this.delay }, this.disk);
  }

  /** Makes the next `count` calls of `op` (on paths containing `path`) fail with `code`. */
  failNext(op: FaultOp, options: { code?: string; path?: string; count?: number } = {}): void {
    this.disk.rules.push({
      op,
      code: options.code ?? 'EIO',
      path: options.path,
      count: options.count ?? 1,
    });
  }

  /** How many calls of `op` were made (failed ones included), over every boot. */
  count(op: FaultOp): number {
    return this.disk.counts.get(op) ?? 0;
  }

  /** Names in `dir` as a reader sees them now. */
  names(dir: string): string[] {
    return [...(this.disk.dir(dir)?.live.keys() ?? [])].sort();
  }

  /** Throws if this boot crashed or a fault is due; counts the call. */
  check(op: FaultOp, path: string): void {
    if (!this.alive) throw fsError('EIO', `${op} after the machine crashed`, path);
    this.disk.counts.set(op, this.count(op) + 1);
    const rule = this.disk.rules.find(
      (r) => r.op === op && (r.path === undefined || path.includes(r.path)),
    );
    if (rule === undefined) return;
    rule.count--;
    if (rule.count <= 0) this.disk.rules = this.disk.rules.filter((r) => r !== rule);
    throw fsError(rule.code, op, path);
  }

  async open(path: string, create: boolean): Promise<LogFile> {
    await this.enter('open', path);
    const dir = this.existingDir(dirname(path), path);
    const name = basename(path);
    let inode = dir.live.get(name);
    if (create) {
      if (inode !== undefined) throw fsError('EEXIST', 'open', path);
      inode = new Inode();
      dir.live.set(name, inode);
      dir.pending.push({ kind: 'link', name, inode });
    } else if (inode === undefined) {
      throw fsError('ENOENT', 'open', path);
    }
    return new FaultFile(this, inode, path);
  }

  async readdir(dir: string): Promise<string[]> {
    await this.enter('readdir', dir);
    return [...this.existingDir(dir, dir).live.keys()].sort();
  }

  async mkdir(dir: string): Promise<void> {
    await this.enter('mkdir', dir);
    for (let d = dir; !this.disk.dirs.has(d); d = dirname(d)) {
      this.disk.dirs.set(d, new Dir());
      if (dirname(d) === d) break;
    }
  }

  async rename(from: string, to: string): Promise<void> {
    await this.enter('rename', from);
    if (dirname(from) !== dirname(to)) throw fsError('EXDEV', 'rename', to);
    const dir = this.existingDir(dirname(from), from);
    const inode = dir.live.get(basename(from));
    if (inode === undefined) throw fsError('ENOENT', 'rename', from);
    dir.live.delete(basename(from));
    dir.live.set(basename(to), inode);
    dir.pending.push({ kind: 'rename', from: basename(from), to: basename(to), inode });
  }

  async unlink(path: string): Promise<void> {
    await this.enter('unlink', path);
    const dir = this.existingDir(dirname(path), path);
    const inode = dir.live.get(basename(path));
    if (inode === undefined) throw fsError('ENOENT', 'unlink', path);
    dir.live.delete(basename(path));
    dir.pending.push({ kind: 'unlink', name: basename(path), inode });
  }

  async syncDir(dir: string): Promise<void> {
    await this.enter('syncDir', dir);
    const state = this.existingDir(dir, dir);
    state.durable = new Map(state.live);
    state.pending = [];
  }

  private async enter(op: FaultOp, path: string): Promise<void> {
    await this.delay(op, path);
    this.check(op, path);
  }

  private existingDir(dir: string, path: string): Dir {
    const state = this.disk.dir(dir);
    if (state === undefined) throw fsError('ENOENT', 'no such directory', path);
    return state;
  }
}
