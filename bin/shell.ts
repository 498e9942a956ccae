/**
 * The interactive shell of `npm start`: a line-oriented command interpreter over a store. It reads
 * a terminal with a prompt, or standard input line by line when that is not a terminal.
 */
import { createInterface } from 'node:readline';
import { inspect } from 'node:util';
import { isFlotillaError } from '../engine/errors.js';

/** What the shell needs of a store. */
export interface ShellStore {
  get(key: string): Promise<unknown>;
  put(key: string, value: unknown): Promise<number>;
  delete(key: string): Promise<boolean>;
  incr(key: string, by?: number): Promise<unknown>;
  scan(
    range: { prefix: string } | { start?: string; end?: string },
    options?: {
      limit?: number;
    },
  ): AsyncIterable<[unknown, unknown]>;
  status(): Promise<unknown>;
}

/** Extra commands a caller (e.g. the dev cluster) adds: name → handler of the arguments. */
export type ShellCommands = Record<
  string,
  { usage: string; help: string; run: (args: string[]) => Promise<string> }
>;

/** Splits a command line into words; double or single quotes group, backslash escapes. */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quote !== null) {
      if (ch === quote) quote = null;
      else if (ch === '\\' && quote === '"' && i + 1 < line.length) current += line[++i];
      else current += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (ch === ' ' || ch === '\t') {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
    } else {
      current += ch === '\\' && i + 1 < line.length ? line[++i] : ch;
      inWord = true;
    }
  }
  if (quote !== null) throw new Error(`unterminated ${quote} quote`);
  if (inWord) words.push(current);
  return words;
}

/**
 * The first `n` words of a line (quoting as in splitWords) and the rest of the line as typed,
 * so that a JSON value keeps its quotes.
 */
export function splitHead(line: string, n: number): { words: string[]; rest: string } {
  let at = 0;
  const words: string[] = [];
  while (words.length < n) {
    while (at < line.length && (line[at] === ' ' || line[at] === '\t')) at++;
    if (at >= line.length) break;
    let end = at;
    let quote: string | null = null;
    while (end < line.length) {
      const ch = line[end]!;
      if (quote !== null) {
        if (ch === quote) quote = null;
        else if (ch === '\\') end++;
      } else if (ch === '"' || ch === "'") quote = ch;
      else if (ch === ' ' || ch === '\t') break;
      else if (ch === '\\') end++;
      end++;
    }
    words.push(...splitWords(line.slice(at, end)));
    at = end;
  }
  return { words, rest: line.slice(at).trim() };
}

/** A value typed in the shell: JSON when it parses as JSON, else the text itself. */
export function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function show(value: unknown): string {
  if (value === undefined) return '(nil)';
  if (typeof value === 'string') return JSON.stringify(value);
  return inspect(value, { depth: 6, colors: false, breakLength: 100 });
}

const scanLimitDefault = 100;

/** Runs one command line against the store; returns the text to print and whether to quit. */
export async function runCommand(
  store: ShellStore,
  line: string,
  extra: ShellCommands = {},
): Promise<{ output: string; quit: boolean }> {
  const words = splitWords(line.trim());
  const [command, ...args] = words;
  if (command === undefined) return { output: '', quit: false };
  const need = (n: number, usage: string) => {
    if (args.length < n) throw new Error(`usage: ${usage}`);
  };
  switch (command.toLowerCase()) {
    case 'get':
      need(1, 'get <key>');
      return { output: show(await store.get(args[0]!)), quit: false };
    case 'put':
    case 'set': {
      const { words: head, rest } = splitHead(line.trim(), 2);
      if (head.length < 2 || rest === '') throw new Error('usage: put <key> <value>');
      const version = await store.put(head[1]!, parseValue(rest));
      return { output: `OK (version ${version})`, quit: false };
    }
    case 'del':
    case 'delete':
      need(1, 'del <key>');
      return { output: (await store.delete(args[0]!)) ? '1' : '0', quit: false };
    case 'incr': {
      need(1, 'incr <key> [by]');
      const by = args[1] === undefined ? 1 : Number(args[1]);
      if (!Number.isFinite(by)) throw new Error('usage: incr <key> [by] — by must be a number');
      return { output: show(await store.incr(args[0]!, by)), quit: false };
    }
    case 'scan': {
      const lines: string[] = [];
      const limit = args[1] === undefined ? scanLimitDefault : Number(args[1]);
      for await (const [k, v] of store.scan({ prefix: args[0] ?? '' }, { limit })) {
        lines.push(`${show(k)} => ${show(v)}`);
      }
      lines.push(`(${lines.length} ${lines.length === 1 ? 'entry' : 'entries'})`);
      return { output: lines.join('\n'), quit: false };
    }
    case 'status':
      return { output: show(await store.status()), quit: false };
    case 'help':
      return { output: helpText(extra), quit: false };
    case 'quit':
    case 'exit':
      return { output: 'bye', quit: true };
    default: {
      const handler = extra[command.toLowerCase()];
      if (handler === undefined) throw new Error(`unknown command '${command}'; try 'help'`);
      return { output: await handler.run(args), quit: false };
    }
  }
}

function helpText(extra: ShellCommands): string {
  const rows: [string, string][] = [
    ['put <key> <value>', 'store a value (JSON if it parses, else text)'],
    ['get <key>', 'read a value'],
    ['del <key>', 'delete a key'],
    ['incr <key> [by]', 'add to a number atomically'],
    ['scan [prefix] [limit]', `list keys in order (default limit ${scanLimitDefault})`],
    ['status', 'shards, log and state of this store'],
    ...Object.values(extra).map((c): [string, string] => [c.usage, c.help]),
    ['help', 'this list'],
    ['quit', 'leave the shell'],
  ];
  const width = Math.max(...rows.map(([u]) => u.length));
  return rows.map(([u, h]) => `  ${u.padEnd(width)}  ${h}`).join('\n');
}

/** Reads commands from `input` until `quit` or end of input, printing results to `output`. */
export async function runShell(
  store: ShellStore,
  options: {
    input?: NodeJS.ReadableStream;
    output?: NodeJS.WritableStream;
    extra?: ShellCommands;
    banner?: string;
  } = {},
): Promise<void> {
  const input = options.input ?? process.stdin;
  const output = options.output ?? process.stdout;
  const interactive = 'isTTY' in input && input.isTTY === true;
  const rl = createInterface({ input, output, terminal: interactive });
  const write = (text: string) => output.write(`${text}\n`);
  if (options.banner !== undefined && interactive) write(options.banner);
  rl.setPrompt('flotilla> ');
  if (interactive) rl.prompt();
  for await (const line of rl) {
    try {
      const { output: text, quit } = await runCommand(store, line, options.extra);
      if (text !== '') write(text);
      if (quit) break;
    } catch (err) {
      const code = isFlotillaError(err) ? `${err.code}: ` : '';
      write(`(error) ${code}${err instanceof Error ? err.message : String(err)}`);
    }
    if (interactive) rl.prompt();
  }
  rl.close();
}
