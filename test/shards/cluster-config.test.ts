import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FlotillaError } from '../../engine/errors.js';
import {
  fullAddress,
  initialPlacement,
  loadClusterConfig,
  loadSecret,
  parseAddress,
  parseClusterConfig,
} from '../../shards/cluster-config.js';

const dir = mkdtempSync(join(tmpdir(), 'flotilla-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const good = {
  clusterId: 'test-1',
  secretFile: 'secret',
  shards: 8,
  replicas: 3,
  nodes: [
    { id: 1, raft: '127.0.0.1:7001', client: '127.0.0.1:8001' },
    { id: 2, raft: '127.0.0.1:7002', client: '127.0.0.1:8002' },
    { id: 3, raft: '127.0.0.1:7003', client: '127.0.0.1:8003' },
  ],
};

function messageOf(raw: unknown): string {
  try {
    parseClusterConfig(raw, 'cluster.json', dir);
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(FlotillaError);
    expect((err as FlotillaError).code).toBe('CONFIG');
    return (err as Error).message;
  }
}

describe('cluster.json', () => {
  it('accepts a well-formed config and resolves the secret file beside it', () => {
    const config = parseClusterConfig(good, 'cluster.json', dir);
    expect(config.secretFile).toBe(join(dir, 'secret'));
    expect(config.nodes.map((n) => n.id)).toEqual([1, 2, 3]);
  });

  it('names the problem in a malformed config', () => {
    expect(messageOf([])).toMatch(/top level/);
    expect(messageOf({ ...good, extra: 1 })).toMatch(/unknown field "extra"/);
    expect(messageOf({ ...good, clusterId: '' })).toMatch(/clusterId/);
    expect(messageOf({ ...good, shards: 0 })).toMatch(/shards/);
    expect(messageOf({ ...good, replicas: 5 })).toMatch(/exceeds the number of nodes/);
    expect(messageOf({ ...good, nodes: [] })).toMatch(/nodes must be/);
    const dupId = [...good.nodes.slice(0, 2), { ...good.nodes[2]!, id: 1 }];
    expect(messageOf({ ...good, nodes: dupId })).toMatch(/node id 1 appears twice/);
    const dupAddr = [...good.nodes.slice(0, 2), { ...good.nodes[2]!, raft: '127.0.0.1:7001' }];
    expect(messageOf({ ...good, nodes: dupAddr })).toMatch(/used twice/);
    const badPort = [{ ...good.nodes[0]!, client: 'localhost:70000' }];
    expect(messageOf({ ...good, replicas: 1, nodes: badPort })).toMatch(/port 70000/);
  });

  it('reports unreadable and non-JSON files', () => {
    expect(() => loadClusterConfig(join(dir, 'missing.json'))).toThrow(/cannot read/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ nope');
    expect(() => loadClusterConfig(bad)).toThrow(/not valid JSON/);
  });

  it('reads the secret and refuses a missing or short one', () => {
    const config = parseClusterConfig(good, 'cluster.json', dir);
    expect(() => loadSecret(config)).toThrow(/cannot read the cluster secret/);
    writeFileSync(join(dir, 'secret'), 'short\n');
    expect(() => loadSecret(config)).toThrow(/at least 16 bytes/);
    writeFileSync(join(dir, 'secret'), 'a-long-enough-cluster-secret\n');
    expect(loadSecret(config).toString()).toBe('a-long-enough-cluster-secret');
  });
});

describe('addresses', () => {
  it('parse host:port and bracketed IPv6', () => {
    expect(parseAddress('localhost:80', 'a')).toEqual({ host: 'localhost', port: 80 });
    expect(parseAddress('[::1]:9000', 'a')).toEqual({ host: '::1', port: 9000 });
    expect(() => parseAddress('no-port', 'a')).toThrow(FlotillaError);
    expect(() => parseAddress(42, 'a')).toThrow(FlotillaError);
  });

  it('default to the loopback host when only a port is given', () => {
    expect(parseAddress('7001', 'a')).toEqual({ host: '127.0.0.1', port: 7001 });
    expect(parseAddress(':7001', 'a')).toEqual({ host: '127.0.0.1', port: 7001 });
    expect(fullAddress(':7001')).toBe('127.0.0.1:7001');
    expect(fullAddress('[::1]:7001')).toBe('[::1]:7001');
    const nodes = [{ id: 1, raft: '7001', client: ':8001' }];
    const config = parseClusterConfig({ ...good, replicas: 1, nodes }, 'cluster.json', dir);
    expect(config.nodes).toEqual(nodes);
    const clash = [...nodes, { id: 2, raft: '127.0.0.1:7001', client: '8002' }];
    expect(messageOf({ ...good, replicas: 1, nodes: clash })).toMatch(/used twice/);
  });
});

describe('initial placement', () => {
  it('spreads replicas and preferred leaders evenly and deterministically', () => {
    const config = parseClusterConfig({ ...good, shards: 9 }, 'cluster.json', dir);
    const placement = initialPlacement(config);
    expect(placement).toEqual(initialPlacement(config));
    const leaders = new Map<number, number>();
    const replicas = new Map<number, number>();
    for (const nodes of placement.values()) {
      expect(new Set(nodes).size).toBe(3);
      leaders.set(nodes[0]!, (leaders.get(nodes[0]!) ?? 0) + 1);
      for (const n of nodes) replicas.set(n, (replicas.get(n) ?? 0) + 1);
    }
    expect([...leaders.values()]).toEqual([3, 3, 3]);
    expect([...replicas.values()]).toEqual([9, 9, 9]);
  });
});
