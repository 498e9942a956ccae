/**
 * The file-system operations the log needs, as an interface, so that a fault-injecting in-memory
 * file system (test/support/fault-fs.ts) can stand in for the real one. Writes are async (they go
 * to the thread pool); reads of entries are synchronous preads, because the Raft core reads its
 * log synchronously. Errors are the platform's (with a `code` such as 'EIO' or 'ENOENT'); the log
 * wraps them into FlotillaErrors.
 */
import * as fs from 'node:fs';

/** An open file. Positions are byte offsets; every call names its own (pread/pwrite style). */
export interface LogFile {
  /** Writes all of `data` at `position`. */
  write(data: Uint8Array, position: number): Promise<void>;
  /** Reads up to `into.length` bytes at `position`; resolves to the count read (short at EOF). */
  read(into: Uint8Array, position: number): Promise<number>;
  /** As `read`, synchronously (pread on the calling thread). */
  readSync(into: Uint8Array, position: number): number;
  /** Makes the written data (and the size) durable: fdatasync. */
  datasync(): Promise<void>;
  /**
   * Writes all of `data` at `position` and makes it durable, as `write` then `datasync` would
   * (resolving only once both succeeded), but in one operation where the platform has one.
   */
  writeDurable(data: Uint8Array, position: number): Promise<void>;
  /** Sets the file's size (extending with zeros): ftruncate. */
  truncate(size: number): Promise<void>;
  /** The file's current size: fstat. */
  size(): Promise<number>;
  close(): Promise<void>;
}

/** The directory operations of the log. Paths are absolute or relative to the process. */
export interface LogFs {
  /** Opens a file for reading and writing; with `create`, creates it (failing if it exists). */
  open(path: string, create: boolean): Promise<LogFile>;
  /** Names of the entries of `dir`. */
  readdir(dir: string): Promise<string[]>;
  /** Creates `dir` and its parents; succeeds if it exists. */
  mkdir(dir: string): Promise<void>;
  /** Renames `from` to `to` (same directory), replacing `to`. */
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Makes the directory's entries (creates, renames, unlinks) durable: fsync on the directory. */
  syncDir(dir: string): Promise<void>;
}

function call<T>(fn: (cb: (err: NodeJS.ErrnoException | null, value: T) => void) => void) {
  return new Promise<T>((resolve, reject) => {
    fn((err, value) => (err === null ? resolve(value) : reject(err)));
  });
}

/**
 * Flags of a file's second descriptor, whose every write is durable on return; undefined where
 * the platform has no O_DSYNC (Windows), where durable writes are write + fdatasync instead.
 */
const durableFlags =
  fs.constants.O_DSYNC === undefined ? undefined : fs.constants.O_WRONLY | fs.constants.O_DSYNC;

function writeAll(fd: number, data: Uint8Array, position: number): Promise<void> {
  // The first write is issued before this returns: the caller's turn ends with it in flight.
  return new Promise<void>((resolve, reject) => {
    let done = 0;
    const next = (err: NodeJS.ErrnoException | null, n: number): void => {
      if (err !== null) {
        reject(err);
        return;
      }
      done += n;
      if (done === data.length) resolve();
      else fs.write(fd, data, done, data.length - done, position + done, next);
    };
    fs.write(fd, data, 0, data.length, position, next);
  });
}

/**
 * A file of the node file system. Durable writes go through a second descriptor of the same file
 * opened with O_DSYNC: each write(2) on it returns once its data, and the metadata needed to read
 * it back, are on stable storage (POSIX synchronized I/O data integrity, what fdatasync gives),
 * so one thread-pool job and one system call do what `write` + `datasync` do in two of each
 * (PostgreSQL's `wal_sync_method = open_datasync`). A failed write is reported as the write's
 * error, and the log fails closed on it as it does on a failed fdatasync.
 */
class NodeLogFile implements LogFile {
  private closed = false;

  constructor(
    private readonly fd: number,
    private readonly path: string,
    /** The O_DSYNC descriptor: opened with the file when the log creates it, else on first use. */
    private durableFd: number | undefined,
  ) {}

  write(data: Uint8Array, position: number): Promise<void> {
    if (data.length === 0) return Promise.resolve();
    return writeAll(this.fd, data, position);
  }

  writeDurable(data: Uint8Array, position: number): Promise<void> {
    const fd = this.durableFd;
    if (this.closed) {
      const err: NodeJS.ErrnoException = new Error(`EBADF: ${this.path} is closed`);
      err.code = 'EBADF';
      return Promise.reject(err);
    }
    if (durableFlags === undefined) return this.write(data, position).then(() => this.datasync());
    if (fd === undefined) return this.openDurable().then(() => this.writeDurable(data, position));
    if (data.length === 0) return Promise.resolve();
    return writeAll(fd, data, position);
  }

  private async openDurable(): Promise<void> {
    const flags = durableFlags!;
    const fd = await call<number>((cb) => fs.open(this.path, flags, cb));
    if (this.durableFd === undefined && !this.closed) this.durableFd = fd;
    else await call<void>((cb) => fs.close(fd, (err) => cb(err, undefined)));
  }

  async read(into: Uint8Array, position: number): Promise<number> {
    let done = 0;
    while (done < into.length) {
      const n = await call<number>((cb) =>
        fs.read(this.fd, into, done, into.length - done, position + done, cb),
      );
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  readSync(into: Uint8Array, position: number): number {
    let done = 0;
    while (done < into.length) {
      const n = fs.readSync(this.fd, into, done, into.length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  datasync(): Promise<void> {
    return call<void>((cb) => fs.fdatasync(this.fd, (err) => cb(err, undefined)));
  }

  truncate(size: number): Promise<void> {
    return call<void>((cb) => fs.ftruncate(this.fd, size, (err) => cb(err, undefined)));
  }

  async size(): Promise<number> {
    const stat = await call<fs.Stats>((cb) => fs.fstat(this.fd, cb));
    return stat.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    const durable = this.durableFd;
    this.durableFd = undefined;
    try {
      if (durable !== undefined) {
        await call<void>((cb) => fs.close(durable, (err) => cb(err, undefined)));
      }
    } finally {
      await call<void>((cb) => fs.close(this.fd, (err) => cb(err, undefined)));
    }
  }
}

/** The real file system (node:fs). */
export const nodeLogFs: LogFs = {
  async open(path, create) {
    const fd = await call<number>((cb) => fs.open(path, create ? 'wx+' : 'r+', cb));
    const flags = durableFlags;
    if (!create || flags === undefined) return new NodeLogFile(fd, path, undefined);
    // A file the log creates is one it will append to: its durable descriptor comes now, off
    // the path of the first append.
    let durable: number;
    try {
      durable = await call<number>((cb) => fs.open(path, flags, cb));
    } catch (err) {
      await call<void>((cb) => fs.close(fd, (e) => cb(e, undefined)));
      throw err;
    }
    return new NodeLogFile(fd, path, durable);
  },
  readdir: (dir) => fs.promises.readdir(dir),
  async mkdir(dir) {
    await fs.promises.mkdir(dir, { recursive: true });
  },
  rename: (from, to) => fs.promises.rename(from, to),
  unlink: (path) => fs.promises.unlink(path),
  async syncDir(dir) {
    const fd = await call<number>((cb) => fs.open(dir, 'r', cb));
    try {
      await call<void>((cb) => fs.fsync(fd, (err) => cb(err, undefined)));
    } finally {
      await call<void>((cb) => fs.close(fd, (err) => cb(err, undefined)));
    }
  },
};
