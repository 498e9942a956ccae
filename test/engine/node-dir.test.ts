import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FlotillaError } from '../../engine/errors.js';
import { openNodeDir } from '../../engine/node-dir.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'flotilla-nodedir-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const codeOf = (fn: () => unknown) => {
  try {
    fn();
    return 'ok';
  } catch (err) {
    return err instanceof FlotillaError ? err.code : String(err);
  }
};

describe('node directory', () => {
  it('is created with an identity and reopened with the same one', () => {
    const dir = join(root, 'n1');
    const first = openNodeDir(dir, { nodeId: 1, shards: 16 });
    expect(first.created).toBe(true);
    const again = openNodeDir(dir, { nodeId: 1, shards: 16 });
    expect(again.created).toBe(false);
    expect(again.identity).toEqual(first.identity);
  });

  it('refuses a directory of another node, cluster or shard count', () => {
    const dir = join(root, 'n1');
    openNodeDir(dir, { clusterId: 'c1', nodeId: 1, shards: 16 });
    const before = readFileSync(join(dir, 'node.json'), 'utf8');
    expect(codeOf(() => openNodeDir(dir, { clusterId: 'c1', nodeId: 2, shards: 16 }))).toBe(
      'CONFIG',
    );
    expect(codeOf(() => openNodeDir(dir, { clusterId: 'c2', nodeId: 1, shards: 16 }))).toBe(
      'CONFIG',
    );
    expect(codeOf(() => openNodeDir(dir, { clusterId: 'c1', nodeId: 1, shards: 8 }))).toBe(
      'CONFIG',
    );
    expect(readFileSync(join(dir, 'node.json'), 'utf8')).toBe(before);
  });

  it('refuses another format version and a damaged identity file', () => {
    const dir = join(root, 'n1');
    openNodeDir(dir, { nodeId: 1, shards: 4 });
    const file = join(dir, 'node.json');
    const id = JSON.parse(readFileSync(file, 'utf8'));
    writeFileSync(file, JSON.stringify({ ...id, version: 99 }));
    expect(codeOf(() => openNodeDir(dir, { nodeId: 1, shards: 4 }))).toBe('VERSION_MISMATCH');
    writeFileSync(file, '{ not json');
    expect(codeOf(() => openNodeDir(dir, { nodeId: 1, shards: 4 }))).toBe('CORRUPT_STATE');
    writeFileSync(file, JSON.stringify({ hello: 1 }));
    expect(codeOf(() => openNodeDir(dir, { nodeId: 1, shards: 4 }))).toBe('CORRUPT_STATE');
  });
});

describe('node directory shard count', () => {
  it('is taken from the existing directory when the caller does not name one', () => {
    const dir = join(root, 'n1');
    openNodeDir(dir, { nodeId: 1, shards: 12 });
    expect(openNodeDir(dir, { nodeId: 1 }).identity.shards).toBe(12);
  });
});
