/**
 * Valid state machine inputs for the fuzz seeds: values, commands (as a client builds them) and
 * their entries, structural edits of an entry's MessagePack array, and real LMDB states to apply
 * them to.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { isFlotillaError } from '../../engine/errors.js';
import { valueBytesMax } from '../../engine/limits.js';
import {
  type BatchOp,
  type Command,
  encodeCommand,
  type Session,
} from '../../engine/state/commands.js';
import { KvState, type KvStateOptions } from '../../engine/state/kv-state.js';
import { encodeValue, packr, type Value } from '../../engine/state/value-codec.js';

const leaf: fc.Arbitrary<Value> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.bigInt({ min: -(2n ** 80n), max: 2n ** 80n }),
  fc.string({ maxLength: 12 }),
  fc.date({ noInvalidDate: true }),
  fc.uint8Array({ maxLength: 12 }),
);

/** A value of the state machine's model (some are refused by the encoder; see commandArb). */
export const valueArb: fc.Arbitrary<Value> = fc.letrec<{ value: Value }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 6 }), tie('value'), { maxKeys: 3 }),
  ),
})).value;

/** Keys that collide often (so ops find what earlier ones wrote), plus odd and longest ones. */
export const keyArb: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('a', 'b', 'counter', 'big', 'raw') },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 6 }) },
  { weight: 1, arbitrary: fc.constant('k'.repeat(4000)) },
);

const sessionArb = fc.option(
  fc.record({
    id: fc.constantFrom('s1', 's2'),
    seq: fc.integer({ min: 1, max: 4 }),
    time: fc.integer({ min: 0, max: 1_000_000 }),
  }),
  { nil: undefined },
);

const opArb: fc.Arbitrary<BatchOp> = fc.oneof(
  fc.record({ type: fc.constant('put' as const), key: keyArb, value: valueArb }),
  fc.record({ type: fc.constant('delete' as const), key: keyArb }),
  fc.record({
    type: fc.constant('cas' as const),
    key: keyArb,
    expected: fc.oneof(
      fc.record({ version: fc.integer({ min: 0, max: 8 }) }),
      fc.record({ value: valueArb }),
    ),
    value: valueArb,
  }),
  fc.record({
    type: fc.constant('incr' as const),
    key: keyArb,
    by: fc.oneof(fc.integer({ min: -5, max: 5 }), fc.bigInt({ min: -5n, max: 5n }), fc.double()),
  }),
);

/** Whether the encoder accepts `command` (it refuses some generated values, e.g. a lone
 *  surrogate or a "__proto__" key). */
function encodable(command: Command): boolean {
  try {
    encodeCommand(command);
    return true;
  } catch (err) {
    if (!isFlotillaError(err)) throw err;
    return false;
  }
}

/** A command the encoder accepts, of every type, with or without a session. */
export const commandArb: fc.Arbitrary<Command> = fc
  .oneof(
    { weight: 6, arbitrary: fc.tuple(opArb, sessionArb).map(([op, s]) => withSession(op, s)) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.array(opArb, { maxLength: 4 }), sessionArb)
        .map(([ops, s]): Command => withSession({ type: 'batch', ops }, s)),
    },
    {
      weight: 2,
      arbitrary: fc
        .record({ name: fc.constantFrom('bump', 'copy', 'fail', 'missing'), key: keyArb })
        .chain((c) => valueArb.map((args): Command => ({ type: 'exec', ...c, args }))),
    },
    { weight: 1, arbitrary: fc.constant<Command>({ type: 'noop' }) },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 0, max: 2 ** 32 - 1 })
        .map((hashLow): Command => ({ type: 'shardRange', hashLow, hashHigh: 2 ** 32 })),
    },
  )
  .filter(encodable);

function withSession(command: BatchOp | Command, session: Session | undefined): Command {
  return (session === undefined ? command : { ...command, session }) as Command;
}

/** What a user command of the fuzzed states may do: count, copy, throw. */
export function defineUserCommands(state: KvState): void {
  state.defineCommand('bump', (tx, key) => {
    const current = tx.get(key);
    const next = typeof current === 'number' ? current + 1 : 1;
    tx.put(key, next);
    return next;
  });
  state.defineCommand('copy', (tx, key, args) => {
    tx.put(key, args);
    return tx.get('a') ?? null;
  });
  state.defineCommand('fail', () => {
    throw new Error('this command always fails');
  });
}

/** Commands that give a fresh shard something for later entries to find. */
export const populate: readonly Command[] = [
  { type: 'put', key: 'a', value: { x: 1, list: [1, 'two', null] } },
  { type: 'put', key: 'counter', value: 5 },
  { type: 'put', key: 'big', value: 10n ** 20n },
  { type: 'put', key: 'raw', value: Uint8Array.of(1, 2, 3) },
  { type: 'put', key: 'b', value: 'text', session: { id: 's1', seq: 1, time: 10 } },
];

/** A value MessagePack can carry that probes what the decoder accepts in any field. */
export const wireValueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53),
  fc.integer(),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
  fc.string({ maxLength: 8 }),
  fc.uint8Array({ maxLength: 10 }).map((b) => Buffer.from(b)),
  fc
    .tuple(fc.constantFrom(0, 1, 2, 255), fc.uint8Array({ maxLength: 10 }))
    .map(([tag, rest]) => Buffer.from([tag, ...rest])),
  valueArb.map((v) => {
    // A value in its stored form, as a put carries it.
    try {
      return encodeValue(v);
    } catch (err) {
      if (!isFlotillaError(err)) throw err;
      return null;
    }
  }),
  fc.constantFrom(4000, 4001, 4022, 4023, 70_000).map((length) => ({ $bytes: length, tag: 0x6b })),
  fc.constantFrom(valueBytesMax, valueBytesMax + 1, valueBytesMax + 2).map((length) => ({
    $bytes: length,
    tag: 0,
  })),
  fc.array(fc.oneof(fc.integer(), fc.string({ maxLength: 4 })), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 2 }),
  fc.date({ noInvalidDate: true }),
);

/** One structural edit of an entry's array: at `path` (indexes taken modulo each level). */
export interface Edit {
  path: number[];
  action: 'replace' | 'remove' | 'insert';
  value: unknown;
}

/** An edit of any kind. */
export const editArb: fc.Arbitrary<Edit> = fc.record({
  path: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
  action: fc.constantFrom('replace', 'remove', 'insert'),
  value: wireValueArb,
});

/** `{ $bytes, tag }` stands for that many bytes starting with `tag`: a long key or value,
 *  made only when it is used, so that a counterexample prints short. */
function materialize(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || !('$bytes' in value)) return value;
  const { $bytes, tag } = value as { $bytes: number; tag: number };
  const out = Buffer.alloc($bytes, 0x6b);
  out[0] = tag;
  return out;
}

/** Applies `edits` to a copy of the decoded entry array and encodes it again. */
export function editEntry(data: Uint8Array, edits: readonly Edit[]): Uint8Array {
  const root: unknown = data.length === 0 ? [] : packr.unpack(data);
  for (const edit of edits) {
    let parent = root as unknown[];
    let at = 0;
    for (let depth = 0; ; depth++) {
      if (!Array.isArray(parent)) break;
      at = parent.length === 0 ? 0 : edit.path[depth]! % parent.length;
      const child = parent[at];
      if (depth + 1 >= edit.path.length || !Array.isArray(child)) break;
      parent = child;
    }
    if (!Array.isArray(parent)) continue;
    const value = materialize(edit.value);
    if (edit.action === 'replace' && parent.length > 0) parent[at] = value;
    else if (edit.action === 'remove') parent.splice(at, 1);
    else parent.splice(at, 0, value);
  }
  return packr.pack(root);
}

const dirs: string[] = [];

/** Opens a KvState in a fresh temporary directory. */
export function openTempState(options: Partial<KvStateOptions> = {}): KvState {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-fuzz-'));
  dirs.push(dir);
  return KvState.open({ dir, ...options });
}

/** Closes `states` and removes every directory openTempState made. */
export async function closeTempStates(...states: (KvState | undefined)[]): Promise<void> {
  for (const state of states) await state?.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}
