/**
 * Fuzzing cluster.json (shards/cluster-config.ts): random JSON documents, values no JSON parser
 * makes (an embedding application may pass any object), structurally mutated valid configs and
 * byte-mutated config files. The only failure is a CONFIG FlotillaError; whatever is accepted
 * keeps the documented invariants: ids unique, every address a valid host:port and no endpoint
 * named twice (however it is spelled), 1 <= replicas <= nodes, shards in range.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { FlotillaError } from '../../engine/errors.js';
import { shardsMax } from '../../engine/limits.js';
import {
  type ClusterConfig,
  loadClusterConfig,
  parseAddress,
  parseClusterConfig,
} from '../../shards/cluster-config.js';
import { fuzzParams, fuzzTimeoutMs } from './fuzz-support.js';
import { mutate, mutationsArb } from './mutate.js';

const dir = mkdtempSync(join(tmpdir(), 'flotilla-fuzz-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Hosts, several of them spelled more than one way. */
const hosts = ['127.0.0.1', '10.0.0.7', 'node-a.example', 'localhost', '[::1]', '[fe80::1:2]'];

/** Other spellings of the same endpoint host. */
function respell(host: string, variant: number): string {
  const spellings: Record<string, string[]> = {
    '[::1]': ['[0:0:0:0:0:0:0:1]', '[::0:1]', '[0::1]'],
    '[fe80::1:2]': ['[FE80::1:2]', '[fe80:0::1:2]', '[fe80:0:0:0:0:0:1:2]'],
    'node-a.example': ['NODE-A.example', 'Node-A.Example'],
    localhost: ['LOCALHOST', 'LocalHost'],
  };
  const options = spellings[host] ?? [host];
  return options[variant % options.length]!;
}

interface RawNode {
  id: unknown;
  raft: unknown;
  client: unknown;
  [field: string]: unknown;
}

interface RawConfig {
  clusterId: unknown;
  secretFile: unknown;
  shards: unknown;
  replicas?: unknown;
  nodes: unknown;
  [field: string]: unknown;
}

const validArb: fc.Arbitrary<RawConfig> = fc
  .record({
    clusterId: fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/),
    secretFile: fc.constantFrom('secret', '/etc/flotilla/secret', './s/key'),
    shards: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.constant(shardsMax)),
    ids: fc.uniqueArray(fc.integer({ min: 1, max: 0xffffffff }), { minLength: 1, maxLength: 7 }),
    host: fc.nat(),
    basePort: fc.integer({ min: 1, max: 65_000 }),
    replicas: fc.nat(),
  })
  .map(({ ids, host, basePort, replicas, ...rest }) => ({
    ...rest,
    replicas: 1 + (replicas % ids.length),
    nodes: ids.map((id, i) => {
      const h = hosts[(host + i) % hosts.length]!;
      return { id, raft: `${h}:${basePort + 2 * i}`, client: `${h}:${basePort + 2 * i + 1}` };
    }),
  }));

/** One structural change to a config. */
type ConfigEdit =
  | { kind: 'top'; field: number; value: unknown; remove: boolean }
  | { kind: 'node'; node: number; field: number; value: unknown; remove: boolean }
  | { kind: 'copy'; from: number; to: number; field: number; variant: number }
  | { kind: 'duplicate'; node: number }
  | { kind: 'port'; node: number; field: number; port: string };

const topFields = ['clusterId', 'secretFile', 'shards', 'replicas', 'nodes', 'extra'];
const nodeFields = ['id', 'raft', 'client', 'extra'];

const oddValueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(0, -1, 1.5, 8, 7, 2 ** 32, 2 ** 53, shardsMax + 1, '', '8', null),
  fc.constantFrom('[::]:80', '[:::]:80', '[...]:1', '[g::1]:5', 'a b:1', 'host:', ':80', 'h:0'),
  fc.constantFrom('h:65536', 'h:99999', 'h:080', '[::1]', 'host', 'ä.example:7', '[1.2.3.4]:9'),
);

const editArb: fc.Arbitrary<ConfigEdit> = fc.oneof(
  fc.record({
    kind: fc.constant('top'),
    field: fc.nat(),
    value: oddValueArb,
    remove: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('node'),
    node: fc.nat(),
    field: fc.nat(),
    value: oddValueArb,
    remove: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('copy'),
    from: fc.nat(),
    to: fc.nat(),
    field: fc.nat(),
    variant: fc.nat(),
  }),
  fc.record({ kind: fc.constant('duplicate'), node: fc.nat() }),
  fc.record({
    kind: fc.constant('port'),
    node: fc.nat(),
    field: fc.nat(),
    port: fc.constantFrom('0', '1', '65535', '65536', '007001', '1e3', '0x50', '-1', ''),
  }),
);

/** Any value an embedding application might pass, JSON or not. */
const anythingArb = fc.anything({
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withNullPrototype: true,
  withSet: true,
  withTypedArray: true,
  withSparseArray: true,
});

function applyEdit(config: RawConfig, e: ConfigEdit): RawConfig {
  const out: RawConfig = structuredClone(config);
  const nodes = Array.isArray(out.nodes) ? (out.nodes as RawNode[]) : [];
  // The node at `i` (modulo the count), when it is an object a field can be set on.
  const node = (i: number): RawNode | undefined => {
    const n: unknown = nodes[i % Math.max(1, nodes.length)];
    return typeof n === 'object' && n !== null && !Array.isArray(n) ? (n as RawNode) : undefined;
  };
  switch (e.kind) {
    case 'top': {
      const field = topFields[e.field % topFields.length]!;
      if (e.remove) delete out[field];
      else out[field] = e.value;
      return out;
    }
    case 'node': {
      const target = node(e.node);
      const field = nodeFields[e.field % nodeFields.length]!;
      if (target === undefined) return out;
      if (e.remove) delete target[field];
      else target[field] = e.value;
      return out;
    }
    case 'copy': {
      const [from, to] = [node(e.from), node(e.to)];
      if (from === undefined || to === undefined) return out;
      const field = nodeFields[e.field % 3]!;
      const value = from[field];
      if (typeof value !== 'string') to[field] = value;
      else {
        // The same endpoint, maybe spelled differently; raft and client may swap roles.
        const at = value.lastIndexOf(':');
        const target = e.variant % 2 === 0 ? field : field === 'raft' ? 'client' : 'raft';
        to[target] = `${respell(value.slice(0, at), e.variant)}${value.slice(at)}`;
      }
      return out;
    }
    case 'duplicate': {
      if (nodes.length > 0) nodes.push(structuredClone(nodes[e.node % nodes.length]!));
      return out;
    }
    case 'port': {
      const target = node(e.node);
      const field = e.field % 2 === 0 ? 'raft' : 'client';
      if (target === undefined || typeof target[field] !== 'string') return out;
      const value = target[field] as string;
      target[field] = `${value.slice(0, value.lastIndexOf(':'))}:${e.port}`;
      return out;
    }
  }
}

/** The endpoint an address names, the same for every spelling of it. */
function endpoint(address: string): string {
  const { host, port } = parseAddress(address, 'address');
  const canonical = isIPv6(host) ? new URL(`http://[${host}]/`).hostname : host.toLowerCase();
  return `${canonical}:${port}`;
}

/** Everything an accepted config promises. */
function expectInvariants(config: ClusterConfig, raw: RawConfig): void {
  expect(config.clusterId).toMatch(/^[A-Za-z0-9._-]{1,64}$/);
  expect(isAbsolute(config.secretFile)).toBe(true);
  expect(Number.isInteger(config.shards)).toBe(true);
  expect(config.shards).toBeGreaterThanOrEqual(1);
  expect(config.shards).toBeLessThanOrEqual(shardsMax);
  expect(Number.isInteger(config.replicas)).toBe(true);
  expect(config.replicas).toBeGreaterThanOrEqual(1);
  expect(config.replicas).toBeLessThanOrEqual(config.nodes.length);
  const ids = config.nodes.map((n) => n.id);
  expect(new Set(ids).size).toBe(ids.length);
  for (const id of ids) expect(Number.isInteger(id) && id >= 1 && id <= 0xffffffff).toBe(true);
  const endpoints = config.nodes.flatMap((n) => [endpoint(n.raft), endpoint(n.client)]);
  expect(new Set(endpoints).size).toBe(endpoints.length);
  for (const address of config.nodes.flatMap((n) => [n.raft, n.client])) {
    const { host, port } = parseAddress(address, 'address');
    expect(port >= 1 && port <= 65_535).toBe(true);
    if (address.startsWith('[')) expect(isIPv6(host)).toBe(true);
  }
  expect(config.nodes).toEqual(raw.nodes);
}

/** Parses `raw`: a CONFIG error, or a config that keeps every invariant. */
function check(raw: unknown): 'accepted' | 'refused' {
  let config: ClusterConfig;
  try {
    config = parseClusterConfig(raw, 'cluster.json', dir);
  } catch (err) {
    expect(err).toBeInstanceOf(FlotillaError);
    expect((err as FlotillaError).code).toBe('CONFIG');
    return 'refused';
  }
  expectInvariants(config, raw as RawConfig);
  return 'accepted';
}

describe('fuzz: cluster.json (shards/cluster-config.ts)', () => {
  it(
    'accepts every valid config as it is',
    () => {
      fc.assert(
        fc.property(validArb, (raw) => {
          expect(check(raw)).toBe('accepted');
        }),
        fuzzParams('config valid', 300),
      );
    },
    fuzzTimeoutMs,
  );

  it(
    'refuses a mutated config with CONFIG, or keeps every invariant',
    () => {
      const outcomes = new Set<string>();
      fc.assert(
        fc.property(validArb, fc.array(editArb, { minLength: 1, maxLength: 3 }), (raw, edits) => {
          let config = raw;
          for (const e of edits) config = applyEdit(config, e);
          outcomes.add(check(config));
        }),
        fuzzParams('config mutated', 3000),
      );
      expect(outcomes).toEqual(new Set(['accepted', 'refused']));
    },
    fuzzTimeoutMs,
  );

  it(
    'refuses random JSON documents and values no JSON parser makes with CONFIG',
    () => {
      fc.assert(
        fc.property(fc.oneof(fc.jsonValue(), anythingArb), (raw) => {
          check(raw);
        }),
        fuzzParams('config random values', 2000),
      );
    },
    fuzzTimeoutMs,
  );

  it(
    'refuses an odd value in any field of a valid config with CONFIG',
    () => {
      fc.assert(
        fc.property(validArb, fc.constantFrom(...topFields), anythingArb, (raw, field, value) => {
          check({ ...raw, [field]: value });
        }),
        fuzzParams('config odd fields', 2000),
      );
    },
    fuzzTimeoutMs,
  );

  it(
    'loads byte-mutated config files to a CONFIG error or a valid config',
    () => {
      const file = join(dir, 'cluster.json');
      fc.assert(
        fc.property(validArb, mutationsArb(3), (raw, mutations) => {
          writeFileSync(file, mutate(Buffer.from(JSON.stringify(raw, null, 2)), mutations));
          let config: ClusterConfig;
          try {
            config = loadClusterConfig(file);
          } catch (err) {
            expect(err).toBeInstanceOf(FlotillaError);
            expect((err as FlotillaError).code).toBe('CONFIG');
            return;
          }
          expectInvariants(config, JSON.parse(readFileSync(file, 'utf8')) as RawConfig);
        }),
        fuzzParams('config files', 300, 10),
      );
    },
    fuzzTimeoutMs,
  );
});
