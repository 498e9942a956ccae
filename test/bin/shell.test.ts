import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { parseValue, runShell, type ShellStore, splitHead, splitWords } from '../../bin/shell.js';
import { Flotilla } from '../../shards/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-shell-'));
  dirs.push(dir);
  return dir;
}

async function runScript(store: ShellStore, script: string): Promise<string> {
  const input = new PassThrough();
  const output = new PassThrough();
  let text = '';
  output.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  input.end(script);
  await runShell(store, { input, output });
  return text;
}

describe('shell parsing', () => {
  it('splits words with quotes and escapes', () => {
    expect(splitWords(`put "a key" 'x y' z\\ w`)).toEqual(['put', 'a key', 'x y', 'z w']);
    expect(splitWords('  get   k  ')).toEqual(['get', 'k']);
    expect(() => splitWords('put "open')).toThrow(/unterminated/);
  });

  it('keeps the rest of a put line as typed, quotes included', () => {
    expect(splitHead('put "a b" {"x": "y z"}', 2)).toEqual({
      words: ['put', 'a b'],
      rest: '{"x": "y z"}',
    });
    expect(splitHead('put k', 2)).toEqual({ words: ['put', 'k'], rest: '' });
  });

  it('reads JSON values and falls back to text', () => {
    expect(parseValue('{"a":1}')).toEqual({ a: 1 });
    expect(parseValue('42')).toBe(42);
    expect(parseValue('hello')).toBe('hello');
  });
});

describe('shell over a real store', () => {
  it('runs commands from a non-terminal input and reports errors without stopping', async () => {
    const store = await Flotilla.open({ dir: tempDir(), shards: 4 });
    try {
      const out = await runScript(
        store as ShellStore,
        [
          'put user:1 {"name":"ada"}',
          'get user:1',
          'incr hits',
          'incr hits 41',
          'put user:2 plain text',
          'scan user:',
          'del user:2',
          'get user:2',
          'bogus',
          'incr hits notanumber',
          'put',
          'quit',
          'get never-reached',
        ].join('\n'),
      );
      const lines = out.trim().split('\n');
      expect(lines[0]).toMatch(/^OK \(version \d+\)$/);
      expect(lines[1]).toBe("{ name: 'ada' }");
      expect(lines[2]).toBe('1');
      expect(lines[3]).toBe('42');
      expect(out).toContain(`"user:1" => { name: 'ada' }`);
      expect(out).toContain(`"user:2" => "plain text"`);
      expect(out).toContain('(2 entries)');
      expect(out).toContain('(nil)');
      expect(out).toContain("(error) unknown command 'bogus'");
      expect(out).toContain('(error) usage: incr <key> [by]');
      expect(out).toContain('(error) usage: put <key> <value>');
      expect(lines.at(-1)).toBe('bye');
      expect(out).not.toContain('never-reached');
    } finally {
      await store.close();
    }
  });
});

describe('the flotilla command', () => {
  const cli = join(process.cwd(), 'dist', 'bin', 'flotilla.js');

  it.skipIf(!existsSync(cli))('runs the shell on piped standard input and keeps the data', () => {
    const dir = join(tempDir(), 'data');
    const first = spawnSync('node', [cli, 'shell', '--dir', dir, '--shards', '4'], {
      input: 'put greeting "hello world"\nincr n 5\n',
      encoding: 'utf8',
    });
    expect(first.status).toBe(0);
    expect(first.stdout).toMatch(/OK \(version \d+\)/);
    const second = spawnSync('node', [cli, 'shell', '--dir', dir], {
      input: 'get greeting\nget n\nstatus\n',
      encoding: 'utf8',
    });
    expect(second.status).toBe(0);
    expect(second.stdout).toContain('"hello world"');
    expect(second.stdout).toContain('5');
    expect(second.stdout).toContain('shards: 4');
  });

  it.skipIf(!existsSync(cli))('refuses bad arguments with a clear message', () => {
    const result = spawnSync('node', [cli, 'shell', '--shards', 'zero'], { encoding: 'utf8' });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/positive integer/);
  });
});
