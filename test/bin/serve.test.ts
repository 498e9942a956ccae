/**
 * `flotilla serve` as real processes (`node dist/bin/flotilla.js serve ...`; `npm test` builds
 * dist first): three nodes start, elect, survive a SIGKILL and exit cleanly on SIGTERM; a bad
 * config, node id, secret, port or data directory stops a node with a clear message before it
 * writes anything.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openNodeDir } from '../../engine/node-dir.js';
import { clusterJson, freePorts, TempDirs, writeCluster } from '../shards/cluster-support.js';

const cli = resolve('dist/bin/flotilla.js');
const dirs = new TempDirs();
afterAll(() => dirs.cleanup());

beforeAll(() => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first`);
});

/** A running `flotilla serve` process and the lines it printed. */
class ServeProcess {
  readonly lines: string[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;

  constructor(config: string, node: number, cwd: string, data?: string) {
    const args = [cli, 'serve', '--config', config, '--node', String(node)];
    if (data !== undefined) args.push('--data', data);
    this.child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let partial = '';
    this.child.stdout!.on('data', (chunk: Buffer) => {
      const text = partial + chunk.toString();
      const parts = text.split('\n');
      partial = parts.pop()!;
      this.lines.push(...parts);
    });
    this.child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString();
    });
    this.exited = new Promise((done) =>
      this.child.once('exit', (code, signal) => done({ code, signal })),
    );
  }

  /** Waits for a printed line matching `pattern`. */
  async line(pattern: RegExp, timeoutMs = 20_000): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find((l) => pattern.test(l));
      if (found !== undefined) return found;
      if (performance.now() > deadline) {
        throw new Error(`no line ${pattern} in:\n${this.lines.join('\n')}\n${this.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }
}

const running: ServeProcess[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) p.kill('SIGKILL');
});

async function cluster(shards: number) {
  const root = dirs.make('flotilla-serve-');
  const { path } = writeCluster(root, clusterJson(await freePorts(6), shards));
  /** Node `node` keeps its data in the default place, `<root>/data/node-<node>`. */
  const start = (node: number) => {
    const p = new ServeProcess(path, node, root);
    running.push(p);
    return p;
  };
  return { root, path, start };
}

/** The node that most recently announced leading `shard`, among `nodes`. */
function latestLeader(nodes: Map<number, ServeProcess>, shard: number): number {
  const pattern = new RegExp(`^node (\\d+) leads shard ${shard} \\(term (\\d+)\\)$`);
  let best = { node: 0, term: -1 };
  for (const p of nodes.values()) {
    for (const l of p.lines) {
      const m = pattern.exec(l);
      if (m !== null && Number(m[2]) > best.term) best = { node: Number(m[1]), term: Number(m[2]) };
    }
  }
  return best.node;
}

async function waitLeaders(nodes: Map<number, ServeProcess>, shards: number, among: number[]) {
  const deadline = performance.now() + 20_000;
  const ok = () =>
    Array.from({ length: shards }, (_, i) => latestLeader(nodes, i + 1)).every((l) =>
      among.includes(l),
    );
  while (!ok()) {
    if (performance.now() > deadline) throw new Error('shards without a leader');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function stopAll(nodes: Iterable<ServeProcess>) {
  const list = [...nodes];
  for (const p of list) p.kill('SIGTERM');
  const results = await Promise.all(list.map((p) => p.exited));
  for (const [i, r] of results.entries()) {
    expect(r, list[i]!.stderr).toEqual({ code: 0, signal: null });
    expect(list[i]!.lines.at(-1)).toMatch(/^node \d stopped$/);
  }
}

describe('flotilla serve', () => {
  it('runs three nodes that elect a leader for every shard and stop on SIGTERM', async () => {
    const c = await cluster(4);
    const nodes = new Map([1, 2, 3].map((id) => [id, c.start(id)]));
    for (const [id, p] of nodes) {
      expect(await p.line(/ ready: /)).toMatch(
        new RegExp(`^node ${id} ready: raft 127\\.0\\.0\\.1:\\d+, client 127\\.0\\.0\\.1:\\d+$`),
      );
    }
    await waitLeaders(nodes, 4, [1, 2, 3]);
    await stopAll(nodes.values());
    for (const id of [1, 2, 3]) {
      const dir = join(c.root, 'data', `node-${id}`);
      expect(readdirSync(dir).sort()).toEqual(['log', 'node.json', 'state']);
    }
  });

  it('survives a SIGKILL: others take its shards; it restarts from its directory', async () => {
    const c = await cluster(3);
    const nodes = new Map([1, 2, 3].map((id) => [id, c.start(id)]));
    await waitLeaders(nodes, 3, [1, 2, 3]);
    // Kill the node leading shard 1.
    const victim = latestLeader(nodes, 1);
    const others = [1, 2, 3].filter((id) => id !== victim);
    nodes.get(victim)!.kill('SIGKILL');
    expect(await nodes.get(victim)!.exited).toEqual({ code: null, signal: 'SIGKILL' });
    await waitLeaders(nodes, 3, others);
    const restarted = c.start(victim);
    nodes.set(victim, restarted);
    await restarted.line(new RegExp(`^node ${victim} ready: `));
    // It rejoined: without another node, every shard can elect only with its vote.
    const [stopped, remaining] = others as [number, number];
    nodes.get(stopped)!.kill('SIGTERM');
    expect(await nodes.get(stopped)!.exited).toEqual({ code: 0, signal: null });
    await waitLeaders(nodes, 3, [victim, remaining]);
    await stopAll([restarted, nodes.get(remaining)!]);
  });
});

describe('flotilla serve refuses to start', () => {
  let root: string;
  let path: string;
  let ports: number[];
  const raw = () => clusterJson(ports, 2);

  beforeAll(async () => {
    root = dirs.make('flotilla-serve-bad-');
    ports = await freePorts(6);
    path = writeCluster(root, raw()).path;
  });

  /** Runs serve to completion with `args`; returns its exit code and stderr. */
  function serveSync(args: string[], cwd = root) {
    const r = spawnSync(process.execPath, [cli, 'serve', ...args], { cwd, encoding: 'utf8' });
    return { code: r.status, stderr: r.stderr, stdout: r.stdout };
  }

  function expectRefused(args: string[], message: RegExp, cwd = root) {
    const r = serveSync(args, cwd);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
  }

  it('with a malformed cluster.json, naming the problem', () => {
    const bad = join(root, 'bad.json');
    writeFileSync(bad, '{ "clusterId": ');
    expectRefused(['--config', bad, '--node', '1'], /bad\.json: not valid JSON/);
    writeFileSync(bad, JSON.stringify({ ...raw(), shards: 0 }));
    expectRefused(['--config', bad, '--node', '1'], /shards must be an integer/);
    expect(existsSync(join(root, 'data'))).toBe(false);
  });

  it('with a node id the config does not list', () => {
    expectRefused(['--config', path, '--node', '9'], /node 9 is not in the cluster config/);
    expect(existsSync(join(root, 'data'))).toBe(false);
  });

  it('with a missing or short secret file', () => {
    const dir = dirs.make('flotilla-serve-secret-');
    const config = join(dir, 'cluster.json');
    writeFileSync(config, JSON.stringify(raw()));
    expectRefused(['--config', config, '--node', '1'], /cannot read the cluster secret/, dir);
    writeFileSync(join(dir, 'secret'), 'short');
    expectRefused(['--config', config, '--node', '1'], /at least 16 bytes/, dir);
    expect(readdirSync(dir).sort()).toEqual(['cluster.json', 'secret']);
  });

  it('when its Raft port is in use', async () => {
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(ports[0], '127.0.0.1', r));
    try {
      const data = join(root, 'port-node-1');
      const message = new RegExp(`127\\.0\\.0\\.1:${ports[0]}: the address is in use`);
      expectRefused(['--config', path, '--node', '1', '--data', data], message);
      expect(existsSync(data)).toBe(false);
    } finally {
      await new Promise((r) => squatter.close(r));
    }
  });

  it('when its client port is in use', async () => {
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(ports[3], '127.0.0.1', r));
    try {
      const data = join(root, 'client-port-node-1');
      const message = new RegExp(
        `serve clients on 127\\.0\\.0\\.1:${ports[3]}: the address is in use`,
      );
      expectRefused(['--config', path, '--node', '1', '--data', data], message);
      expect(existsSync(data)).toBe(false);
    } finally {
      await new Promise((r) => squatter.close(r));
    }
  });

  it('on a data directory of another node or another cluster', () => {
    const other = join(root, 'other-node');
    openNodeDir(other, { clusterId: 'test-cluster', nodeId: 2, shards: 2 });
    const before = readdirSync(other, { recursive: true }).sort();
    expectRefused(['--config', path, '--node', '1', '--data', other], /belongs to node 2/);
    const foreign = join(root, 'other-cluster');
    openNodeDir(foreign, { clusterId: 'another', nodeId: 1, shards: 2 });
    expectRefused(['--config', path, '--node', '1', '--data', foreign], /cluster 'another'/);
    expect(readdirSync(other, { recursive: true }).sort()).toEqual(before);
    expect(readdirSync(foreign, { recursive: true }).sort()).toEqual(before);
  });
});
