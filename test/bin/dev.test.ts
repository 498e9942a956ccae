import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const cli = join(process.cwd(), 'dist', 'bin', 'flotilla.js');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('flotilla dev', () => {
  it.skipIf(!existsSync(cli))(
    'starts a local cluster, serves the shell through it, survives a killed node, stops cleanly',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'flotilla-dev-'));
      dirs.push(dir);
      // Below Linux's default ephemeral range (32768+), so no outgoing connection of a test
      // running beside this one can hold a port the cluster (base..base+102) needs on restart.
      const basePort = 20_000 + Math.floor(Math.random() * 12_000);
      const script = [
        'put greeting {"hello":"world"}',
        'get greeting',
        'nodes',
        'leader greeting',
        'kill 2',
        'incr visits 7',
        'get greeting',
        'restart 2',
        'nodes',
        'quit',
      ].join('\n');
      const args = [cli, 'dev', '--dir', dir, '--base-port', String(basePort), '--shards', '4'];
      const run = spawnSync(process.execPath, args, {
        input: `${script}\n`,
        encoding: 'utf8',
        timeout: 90_000,
      });
      expect(run.status).toBe(0);
      const out = run.stdout;
      expect(out).toMatch(/OK \(version \d+\)/);
      expect(out).toContain("{ hello: 'world' }");
      expect(out).toMatch(/node 1: up \(pid \d+\)/);
      expect(out).toMatch(/key "greeting": shard \d, leader/);
      expect(out).toContain('node 2 killed (SIGKILL)');
      expect(out).toMatch(/\n7\n/);
      expect(out).toContain('node 2 restarted');
      expect(out).toMatch(/node 2: up/);
      expect(out).toContain('[node 1] node 1 stopped');
      const config = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8'));
      expect(config.nodes).toHaveLength(3);
      for (const n of [1, 2, 3]) expect(existsSync(join(dir, `node-${n}`, 'node.json'))).toBe(true);
    },
  );
});
