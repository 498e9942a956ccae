import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCheckHistory } from '../../bin/check-history.js';
import { formatHistory, type HistoryOp } from '../support/history.js';
import { get, put, unknown } from './ops.js';

const dir = mkdtempSync(join(tmpdir(), 'flotilla-check-history-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function run(args: string[]): { code: number; out: string } {
  const lines: string[] = [];
  const code = runCheckHistory(args, (line) => lines.push(line));
  return { code, out: lines.join('\n') };
}

const history = (ops: HistoryOp[]) => formatHistory(ops);

describe('check-history', () => {
  it('exits 0 on a linearizable history', () => {
    const path = file('ok.jsonl', history([put('a', 0, 2, 'x', 1), get('b', 3, 4, 'x', 1)]));
    expect(run([path])).toEqual({ code: 0, out: 'linearizable: 2 ops (0 ignored), 1 partitions' });
  });

  it('exits 1 and explains a violation', () => {
    const ops = [put('a', 0, 2, 'x', 1), put('a', 3, 4, 'x', 2), get('b', 5, 6, 'x', 1)];
    const { code, out } = run([file('stale.jsonl', history(ops))]);
    expect(code).toBe(1);
    expect(out).toContain('keys {x}: not linearizable; shortest failing prefix ends at time 6');
    expect(out).toContain('b [5..6] get x -> 1');
    expect(out).toMatch(/NOT LINEARIZABLE: 1 failing partitions; 3 ops/);
  });

  it('exits 2 on a bad line, naming it', () => {
    const text = `${history([put('a', 0, 2, 'x', 1)])}{"clientId":"a","op":"get"}\n`;
    const { code, out } = run([file('bad.jsonl', text)]);
    expect(code).toBe(2);
    expect(out).toContain('history line 2: call must be a safe integer');
  });

  it('exits 2 on a missing file or bad usage', () => {
    expect(run([join(dir, 'absent.jsonl')]).code).toBe(2);
    expect(run([]).code).toBe(2);
    expect(run(['--steps', 'many', 'x']).code).toBe(2);
    expect(run(['--frobnicate', 'x']).out).toContain('usage: check-history');
  });

  it('exits 3 when the step budget runs out before a verdict', () => {
    const ops = [put('a', 0, 9, 'x', 1, unknown), get('b', 1, 2, 'x'), get('b', 3, 4, 'x', 1)];
    const { code, out } = run(['--steps', '1', file('budget.jsonl', history(ops))]);
    expect(code).toBe(3);
    expect(out).toContain('keys {x}: no verdict, 3 ops, search stopped after 1 steps');
  });
});
