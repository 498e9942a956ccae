/**
 * Fuzzing the state machine's inputs (engine/state): entry data from mutated commands (byte
 * mutations, structural edits of the MessagePack array, random bytes) through decodeCommand and
 * KvState.applyBatch on real LMDB.
 *
 * The oracle is a twin state machine fed the same entries, except that an entry decodeCommand
 * refuses reaches the twin as an empty (no-op) entry. Equal checksums (keys, values, versions,
 * sessions, applied index and term, hash range) then prove that a malformed entry changed nothing
 * but the applied index. Beyond that: decodeCommand throws only its documented errors and accepts
 * only what the encoder could have written; an entry that fails leaves every key and the change
 * feed as they were; every stored value reads back; nothing throws out of applyBatch.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaError, isFlotillaError } from '../../engine/errors.js';
import { changesReadMax } from '../../engine/limits.js';
import { EntryType } from '../../engine/raft/types.js';
import type { ApplyItem } from '../../engine/state/apply.js';
import {
  type BatchOp,
  type Command,
  type CommandResult,
  type DecodedCommand,
  type DecodedOp,
  decodeCommand,
  encodeCommand,
} from '../../engine/state/commands.js';
import type { KvState } from '../../engine/state/kv-state.js';
import { decodeValue } from '../../engine/state/value-codec.js';
import { decodeOverheadBytes, fuzzParams, fuzzTimeoutMs, growthDuring } from './fuzz-support.js';
import { type Mutation, mutate, mutationsArb } from './mutate.js';
import {
  closeTempStates,
  commandArb,
  defineUserCommands,
  type Edit,
  editArb,
  editEntry,
  openTempState,
  populate,
} from './state-seeds.js';

/** The errors decodeCommand documents (a value or key over its limit included). */
const decodeCodes = ['INVALID_ARGUMENT', 'KEY_TOO_LARGE', 'VALUE_TOO_LARGE'];

/** How a fuzzed entry's data is made. */
type EntryFuzz =
  | { kind: 'bytes'; seed: Command; mutations: Mutation[] }
  | { kind: 'structure'; seed: Command; edits: Edit[] }
  | { kind: 'random'; bytes: Uint8Array }
  | { kind: 'valid'; seed: Command };

const entryFuzzArb: fc.Arbitrary<EntryFuzz> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('bytes'),
      seed: commandArb,
      mutations: mutationsArb(3),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('structure'),
      seed: commandArb,
      edits: fc.array(editArb, { minLength: 1, maxLength: 3 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('random'), bytes: fc.uint8Array({ maxLength: 64 }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('valid'), seed: commandArb }) },
);

function entryData(f: EntryFuzz): Uint8Array {
  switch (f.kind) {
    case 'bytes':
      return mutate(encodeCommand(f.seed), f.mutations);
    case 'structure':
      return editEntry(encodeCommand(f.seed), f.edits);
    case 'random':
      return f.bytes;
    case 'valid':
      return encodeCommand(f.seed);
  }
}

function opOf(op: DecodedOp): BatchOp {
  switch (op.type) {
    case 'put':
      return { type: 'put', key: op.key, value: decodeValue(op.stored) };
    case 'delete':
      return { type: 'delete', key: op.key };
    case 'cas': {
      const expected =
        op.expectedVersion !== null
          ? { version: op.expectedVersion }
          : { value: decodeValue(op.expectedStored!) };
      return { type: 'cas', key: op.key, expected, value: decodeValue(op.stored) };
    }
    case 'incr':
      return { type: 'incr', key: op.key, by: op.by };
  }
}

/** The command a client would have built to get `d`: the encoder must accept it. */
function commandOf(d: DecodedCommand): Command {
  if (d.type === 'noop' || d.type === 'shardRange') return d;
  const session = d.session === null ? {} : { session: { ...d.session } };
  if (d.type === 'batch') return { type: 'batch', ops: d.ops.map(opOf), ...session };
  if (d.type === 'exec')
    return { type: 'exec', name: d.name, key: d.key, args: d.args, ...session };
  return { ...opOf(d), ...session };
}

/** decodeCommand's verdict: the decoded command, or its documented error. */
function verdict(data: Uint8Array): { ok: true } | { ok: false; error: FlotillaError } {
  const { result, bytes } = growthDuring(() => {
    try {
      return { ok: true as const, command: decodeCommand(data) };
    } catch (err) {
      if (!isFlotillaError(err)) throw err;
      return { ok: false as const, error: err };
    }
  });
  expect(bytes).toBeLessThan(decodeOverheadBytes + 64 * data.length);
  if (!result.ok) {
    expect(decodeCodes).toContain(result.error.code);
    return result;
  }
  // Whatever decodes is within every limit the encoder enforces.
  expect(() => encodeCommand(commandOf(result.command))).not.toThrow();
  return { ok: true };
}

/** Whether a result says the entry wrote nothing (it failed, or its condition did not hold). */
function wroteNothing(r: CommandResult): boolean {
  return (
    r.type === 'error' ||
    r.type === 'noop' ||
    r.type === 'shardRange' ||
    (r.type === 'batch' && !r.ok) ||
    (r.type === 'cas' && !r.ok) ||
    (r.type === 'delete' && !r.existed)
  );
}

/** Every key of the shard with its version and value: reading them must not throw. */
function keysOf(state: KvState, shard: number) {
  return [...state.scan(shard)].map((e) => [e.key.toString('hex'), e.version, e.value]);
}

describe('fuzz: state machine entries (commands.ts, KvState.applyBatch)', () => {
  let main: KvState;
  let twin: KvState;
  let nextShard = 1;
  let heard = 0;

  beforeAll(() => {
    main = openTempState();
    twin = openTempState();
    defineUserCommands(main);
    defineUserCommands(twin);
    // A listener makes applyBatch decode every change it writes, as a watcher would.
    main.onChanges((changes) => {
      heard += changes.length;
    });
  });

  afterAll(() => closeTempStates(main, twin));

  /** Applies `items` to both states; the twin gets `twinItems`. Results of both. */
  function applyBoth(items: ApplyItem[], twinItems = items) {
    return { got: main.applyBatch(items), want: twin.applyBatch(twinItems) };
  }

  it(
    'turns a malformed entry into an error result that changes nothing but the applied index',
    () => {
      const outcomes = new Map<string, number>();
      fc.assert(
        fc.property(
          entryFuzzArb,
          fc.boolean(),
          commandArb,
          fc.nat(9),
          (fuzz, confChange, follow, typeDraw) => {
            const shard = nextShard++;
            const prefix = populate.map((c, i) => item(shard, i + 1, encodeCommand(c)));
            const first = applyBoth(prefix);
            expect(first.got).toEqual(first.want);
            const before = keysOf(main, shard);

            const data = entryData(fuzz);
            const v = verdict(data);
            const type = confChange && typeDraw === 0 ? EntryType.ConfChange : EntryType.Normal;
            const fuzzed = { ...item(shard, prefix.length + 1, data), type };
            const noop = { ...fuzzed, data: new Uint8Array(0) };
            const { got, want } = applyBoth([fuzzed], v.ok ? [fuzzed] : [noop]);
            const result = got[0]!;
            if (v.ok || type === EntryType.ConfChange) expect(got).toEqual(want);
            else
              expect(result).toEqual({
                type: 'error',
                code: v.error.code,
                message: v.error.message,
              });
            expect(main.checksum(shard)).toBe(twin.checksum(shard));
            if (wroteNothing(result)) {
              expect(keysOf(main, shard)).toEqual(before);
              expect(main.changes(shard, prefix.length)).toEqual([]);
            }

            // A valid entry after it applies the same on both: nothing poisoned the shard.
            const next = item(shard, prefix.length + 2, encodeCommand(follow));
            const after = applyBoth([next]);
            expect(after.got).toEqual(after.want);
            expect(main.checksum(shard)).toBe(twin.checksum(shard));
            keysOf(main, shard);
            const outcome = v.ok ? `decoded ${result.type}` : `refused ${v.error.code}`;
            outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
          },
        ),
        fuzzParams('state entries', 300, 20),
      );
      expect(heard).toBeGreaterThan(0);
      // Refusals of each kind, and mutated entries that are commands in their own right.
      for (const outcome of ['refused INVALID_ARGUMENT', 'decoded put', 'decoded error']) {
        expect([...outcomes.keys()]).toContain(outcome);
      }
    },
    fuzzTimeoutMs,
  );

  it(
    'decodes random and mutated entry bytes to a command within limits or a documented error',
    () => {
      fc.assert(
        fc.property(entryFuzzArb, (fuzz) => {
          verdict(entryData(fuzz));
        }),
        fuzzParams('state decodeCommand', 3000),
      );
    },
    fuzzTimeoutMs,
  );
});

function isCompacted(read: () => unknown): boolean {
  try {
    read();
    return false;
  } catch (err) {
    if (!isFlotillaError(err, 'COMPACTED')) throw err;
    return true;
  }
}

function item(shard: number, index: number, data: Uint8Array): ApplyItem {
  return { shard, index, term: 1, data };
}

describe('fuzz: the change-feed cursor (KvState.changes)', () => {
  let state: KvState;
  const shard = 7;

  beforeAll(() => {
    state = openTempState({ limits: { changesMax: 16 } });
    const entries = Array.from({ length: 120 }, (_, i) =>
      item(shard, i + 1, encodeCommand({ type: 'put', key: `k${i % 10}`, value: i })),
    );
    state.applyBatch(entries);
  });

  afterAll(() => closeTempStates(state));

  const numberArb = fc.oneof(
    fc.integer({ min: -5, max: 130 }),
    fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 2 ** 53),
    fc.constant(Number.MAX_SAFE_INTEGER),
    fc.double(),
    fc.maxSafeNat(),
  );

  it(
    'returns changes after the cursor, at most the limit, or a typed error',
    () => {
      // The feed keeps the latest changes; a cursor below the first kept one is compacted.
      let compacted = 0;
      while (compacted < 120 && isCompacted(() => state.changes(shard, compacted))) compacted++;
      const retained = state.changes(shard, compacted);
      expect(retained.length).toBeGreaterThanOrEqual(16);
      fc.assert(
        fc.property(numberArb, fc.option(numberArb, { nil: undefined }), (cursor, limit) => {
          let got: ReturnType<KvState['changes']>;
          try {
            got = state.changes(shard, cursor, limit);
          } catch (err) {
            expect(err).toBeInstanceOf(FlotillaError);
            const code = (err as FlotillaError).code;
            const validCursor = Number.isSafeInteger(cursor) && cursor >= 0;
            if (code === 'COMPACTED') expect(cursor).toBeLessThan(compacted);
            else expect(!validCursor || !((limit ?? 0) >= 0)).toBe(true);
            if (code !== 'COMPACTED') expect(code).toBe('INVALID_ARGUMENT');
            return;
          }
          // At most the limit (none for a limit below 1), never more than changesReadMax.
          const max = Math.max(0, Math.min(limit ?? changesReadMax, changesReadMax));
          expect(got.length).toBeLessThanOrEqual(max);
          const after = retained.filter((c) => c.index > cursor);
          expect(got).toEqual(after.slice(0, Math.floor(max)));
        }),
        fuzzParams('change cursor', 1000, 5),
      );
    },
    fuzzTimeoutMs,
  );
});
