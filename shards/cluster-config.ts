/**
 * cluster.json: the static description of a cluster, read by `flotilla serve` and
 * `Flotilla.start`. Parsing is strict: any problem is a CONFIG error naming the field, so a bad
 * file stops a node before it writes anything.
 */
import { readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { dirname, isAbsolute, resolve } from 'node:path';
import { FlotillaError } from '../engine/errors.js';
import { shardsMax } from '../engine/limits.js';

/** One node of the cluster. */
export interface NodeConfig {
  id: number;
  /** host:port the node's Raft transport listens on. */
  raft: string;
  /** host:port the node serves clients on. */
  client: string;
}

/** A parsed, validated cluster.json. */
export interface ClusterConfig {
  clusterId: string;
  /** Absolute path of the file holding the cluster secret. */
  secretFile: string;
  shards: number;
  replicas: number;
  nodes: NodeConfig[];
}

/** A host and port parsed from "host:port". */
export interface Address {
  host: string;
  port: number;
}

function fail(source: string, message: string): never {
  throw new FlotillaError('CONFIG', `${source}: ${message}`);
}

/** The host of an address given as a port alone: loopback, so nothing is exposed by default. */
export const defaultHost = '127.0.0.1';

/**
 * Parses "host:port" (IPv6 hosts in brackets), or "port" / ":port" for the loopback host; throws
 * CONFIG naming `field` when malformed.
 */
export function parseAddress(text: unknown, field: string, source = 'address'): Address {
  if (typeof text !== 'string') fail(source, `${field} must be a "host:port" string`);
  const match = /^(?:(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+))?:)?(\d{1,5})$/.exec(text);
  if (match === null) fail(source, `${field} "${text}" is not "host:port"`);
  if (match[1] !== undefined && !isIPv6(match[1])) {
    fail(source, `${field} "${text}": [${match[1]}] is not an IPv6 address`);
  }
  const port = Number(match[3]);
  if (port < 1 || port > 65_535) fail(source, `${field} port ${port} is outside 1..65535`);
  return { host: match[1] ?? match[2] ?? defaultHost, port };
}

/** "host:port" of an address as written in the config (a port alone gets the loopback host). */
export function fullAddress(text: string): string {
  const { host, port } = parseAddress(text, 'address');
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The endpoint `addr` names, equal for every spelling of it: host names are case-insensitive
 *  and an IPv6 address has many textual forms. */
function endpointKey(addr: Address): string {
  const host = isIPv6(addr.host) ? new URL(`http://[${addr.host}]/`).hostname : addr.host;
  return `${host.toLowerCase()}:${addr.port}`;
}

/** A short description of a config value for an error message (any value, not only JSON). */
function shown(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 40));
  if (value === null) return 'null';
  return Array.isArray(value) ? 'an array' : `a value of type ${typeof value}`;
}

function positiveInt(value: unknown, field: string, source: string, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    fail(source, `${field} must be an integer from 1 to ${max}, got ${shown(value)}`);
  }
  return value;
}

const nodeFields = new Set(['id', 'raft', 'client']);

function parseNodes(raw: unknown, source: string): NodeConfig[] {
  if (!Array.isArray(raw) || raw.length === 0) fail(source, 'nodes must be a non-empty array');
  const nodes: NodeConfig[] = [];
  const seen = new Set<string>();
  for (const [i, n] of raw.entries()) {
    if (n === null || typeof n !== 'object') fail(source, `nodes[${i}] must be an object`);
    const node = n as Record<string, unknown>;
    for (const key of Object.keys(node)) {
      if (!nodeFields.has(key)) fail(source, `unknown field "${key}" in nodes[${i}]`);
    }
    const id = positiveInt(node.id, `nodes[${i}].id`, source, 0xffffffff);
    for (const field of ['raft', 'client'] as const) {
      const addr = parseAddress(node[field], `nodes[${i}].${field}`, source);
      const key = endpointKey(addr);
      if (seen.has(key)) fail(source, `nodes[${i}].${field} ${key} is used twice`);
      seen.add(key);
    }
    if (nodes.some((other) => other.id === id)) fail(source, `node id ${id} appears twice`);
    nodes.push({ id, raft: node.raft as string, client: node.client as string });
  }
  return nodes;
}

/** Validates a parsed JSON document as a cluster config; `baseDir` resolves secretFile. */
export function parseClusterConfig(raw: unknown, source: string, baseDir: string): ClusterConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    fail(source, 'the top level must be an object');
  }
  const doc = raw as Record<string, unknown>;
  const known = new Set(['clusterId', 'secretFile', 'shards', 'replicas', 'nodes']);
  for (const key of Object.keys(doc)) if (!known.has(key)) fail(source, `unknown field "${key}"`);
  if (typeof doc.clusterId !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(doc.clusterId)) {
    fail(source, 'clusterId must be 1-64 characters of letters, digits, ".", "_" or "-"');
  }
  if (typeof doc.secretFile !== 'string' || doc.secretFile === '') {
    fail(source, 'secretFile must name the file holding the cluster secret');
  }
  const nodes = parseNodes(doc.nodes, source);
  const shards = positiveInt(doc.shards, 'shards', source, shardsMax);
  const replicas = positiveInt(doc.replicas ?? 3, 'replicas', source, 7);
  if (replicas > nodes.length) {
    fail(source, `replicas (${replicas}) exceeds the number of nodes (${nodes.length})`);
  }
  const secretFile = isAbsolute(doc.secretFile) ? doc.secretFile : resolve(baseDir, doc.secretFile);
  return { clusterId: doc.clusterId, secretFile, shards, replicas, nodes };
}

/** Reads and validates cluster.json at `path`. */
export function loadClusterConfig(path: string): ClusterConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    fail(path, `cannot read: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    fail(path, `not valid JSON: ${(err as Error).message}`);
  }
  return parseClusterConfig(raw, path, dirname(resolve(path)));
}

/** Minimum length of a cluster secret, in bytes. */
export const secretBytesMin = 16;

/** Reads the cluster secret; a missing, unreadable or too short file is a CONFIG error. */
export function loadSecret(config: ClusterConfig): Buffer {
  let secret: Buffer;
  try {
    secret = readFileSync(config.secretFile);
  } catch (err) {
    fail(config.secretFile, `cannot read the cluster secret: ${(err as Error).message}`);
  }
  const trimmed = Buffer.from(secret.toString('utf8').trim(), 'utf8');
  if (trimmed.length < secretBytesMin) {
    fail(config.secretFile, `the cluster secret must be at least ${secretBytesMin} bytes`);
  }
  return trimmed;
}

/**
 * The initial replicas of every shard, derived only from the config so every node computes the
 * same placement: shard i (1-based) goes to `replicas` consecutive nodes starting at node
 * position (i - 1) mod n, and its first replica is the preferred leader — spreading both replicas
 * and leaders evenly.
 */
export function initialPlacement(config: ClusterConfig): Map<number, number[]> {
  const ids = config.nodes.map((n) => n.id);
  const placement = new Map<number, number[]>();
  for (let shard = 1; shard <= config.shards; shard++) {
    const replicas: number[] = [];
    for (let k = 0; k < config.replicas; k++) replicas.push(ids[(shard - 1 + k) % ids.length]!);
    placement.set(shard, replicas);
  }
  return placement;
}
