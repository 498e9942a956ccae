/**
 * The node directory: `<dir>/node.json` names the cluster and node the directory belongs to and
 * the format version of everything in it; `<dir>/log/` holds the binary log and `<dir>/state/`
 * the LMDB environment. Opening a directory of another cluster, node or version fails clearly and
 * writes nothing.
 */
import { randomUUID } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { FlotillaError } from './errors.js';
import { nodeFormatVersion, shardsDefault, shardsMax } from './limits.js';

/** The identity stored in node.json. */
export interface NodeIdentity {
  format: 'flotilla-node';
  version: number;
  clusterId: string;
  nodeId: number;
  /** Number of shards the hash space was cut into when the node was created. */
  shards: number;
  createdAt: string;
}

/** What the caller expects the directory to be. */
export interface NodeDirExpectation {
  clusterId?: string;
  nodeId: number;
  /** The shard count to create the node with; when set, an existing node must match it. */
  shards?: number;
}

/** Paths inside a node directory. */
export interface NodeDirPaths {
  root: string;
  identityFile: string;
  logDir: string;
  stateDir: string;
}

/** The paths of the node directory at `root`. */
export function nodeDirPaths(root: string): NodeDirPaths {
  return {
    root,
    identityFile: join(root, 'node.json'),
    logDir: join(root, 'log'),
    stateDir: join(root, 'state'),
  };
}

function fsyncDir(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function readIdentity(file: string): NodeIdentity | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FlotillaError('IO', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new FlotillaError(
      'CORRUPT_STATE',
      `${file} is not valid JSON; restore it or remove the directory`,
      {
        file,
        cause: err,
      },
    );
  }
  const id = parsed as Partial<NodeIdentity>;
  if (id === null || typeof id !== 'object' || id.format !== 'flotilla-node') {
    throw new FlotillaError('CORRUPT_STATE', `${file} is not a Flotilla node identity file`, {
      file,
    });
  }
  if (id.version !== nodeFormatVersion) {
    throw new FlotillaError(
      'VERSION_MISMATCH',
      `${file} has format version ${String(id.version)}; this build reads version ${nodeFormatVersion}`,
      { file },
    );
  }
  const valid =
    typeof id.clusterId === 'string' &&
    id.clusterId !== '' &&
    Number.isInteger(id.nodeId) &&
    id.nodeId! >= 1 &&
    id.nodeId! <= 0xffffffff &&
    Number.isInteger(id.shards) &&
    id.shards! >= 1 &&
    id.shards! <= shardsMax &&
    typeof id.createdAt === 'string';
  if (!valid) {
    throw new FlotillaError('CORRUPT_STATE', `${file} is missing fields or holds impossible ones`, {
      file,
    });
  }
  return id as NodeIdentity;
}

function checkIdentity(id: NodeIdentity, expect: NodeDirExpectation, file: string): void {
  if (expect.clusterId !== undefined && id.clusterId !== expect.clusterId) {
    throw new FlotillaError(
      'CONFIG',
      `${file} belongs to cluster '${id.clusterId}', not '${expect.clusterId}'; use another directory`,
      { file },
    );
  }
  if (id.nodeId !== expect.nodeId) {
    throw new FlotillaError(
      'CONFIG',
      `${file} belongs to node ${id.nodeId}, not node ${expect.nodeId}; use another directory`,
      { file },
    );
  }
  if (expect.shards !== undefined && id.shards !== expect.shards) {
    throw new FlotillaError(
      'CONFIG',
      `${file} was created with ${id.shards} shards, not ${expect.shards}; ` +
        'open it with the same shard count',
      { file },
    );
  }
}

/**
 * Opens the node directory at `root`, creating it (and node.json, atomically) when it does not
 * exist yet. Returns its identity and whether it was created now.
 */
export function openNodeDir(
  root: string,
  expect: NodeDirExpectation,
): { identity: NodeIdentity; created: boolean; paths: NodeDirPaths } {
  const paths = nodeDirPaths(root);
  const existing = readIdentity(paths.identityFile);
  if (existing !== undefined) {
    checkIdentity(existing, expect, paths.identityFile);
    return { identity: existing, created: false, paths };
  }
  mkdirSync(root, { recursive: true });
  const identity: NodeIdentity = {
    format: 'flotilla-node',
    version: nodeFormatVersion,
    clusterId: expect.clusterId ?? randomUUID(),
    nodeId: expect.nodeId,
    shards: expect.shards ?? shardsDefault,
    createdAt: new Date().toISOString(),
  };
  const tmp = `${paths.identityFile}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeFileSync(fd, `${JSON.stringify(identity, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, paths.identityFile);
  fsyncDir(root);
  mkdirSync(paths.logDir, { recursive: true });
  mkdirSync(paths.stateDir, { recursive: true });
  fsyncDir(root);
  return { identity, created: true, paths };
}
