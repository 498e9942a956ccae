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

class NodeLogFile implements LogFile {
  constructor(private readonly fd: number) {}

  async write(data: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const n = await call<number>((cb) =>
        fs.write(this.fd, data, done, data.length - done, position + done, cb),
      );
      done += n;
    }
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

  close(): Promise<void> {
    return call<void>((cb) => fs.close(this.fd, (err) => cb(err, undefined)));
  }
}

/** The real file system (node:fs). */
export const nodeLogFs: LogFs = {
  async open(path, create) {
    const fd = await call<number>((cb) => fs.open(path, create ? 'wx+' : 'r+', cb));
    return new NodeLogFile(fd);
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
