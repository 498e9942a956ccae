/**
 * Fuzzing the node directory's identity file (engine/node-dir.ts): node.json written by the real
 * code, then mutated field by field and byte by byte. Opening the directory either returns an
 * identity that is what the caller expects, or fails with CORRUPT_STATE, VERSION_MISMATCH or
 * CONFIG and writes nothing.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { FlotillaError } from '../../engine/errors.js';
import { shardsMax } from '../../engine/limits.js';
import { type NodeDirExpectation, openNodeDir } from '../../engine/node-dir.js';
import { fuzzParams, fuzzTimeoutMs } from './fuzz-support.js';
import { mutate, mutationsArb } from './mutate.js';

const root = mkdtempSync(join(tmpdir(), 'flotilla-fuzz-node-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const fields = ['format', 'version', 'clusterId', 'nodeId', 'shards', 'createdAt', 'extra'];

const oddValueArb = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(0, -1, 1.5, 1, 2, 2 ** 32, 2 ** 53, shardsMax + 1, '', '1', null),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) },
);

/** A change to node.json: a field set, removed, or the text's bytes mutated. */
type IdentityEdit =
  | { kind: 'field'; field: number; value: unknown; remove: boolean }
  | { kind: 'bytes'; mutations: Parameters<typeof mutate>[1] };

const editArb: fc.Arbitrary<IdentityEdit> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('field'),
      field: fc.nat(),
      value: oddValueArb,
      remove: fc.nat(4).map((n) => n === 0),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('bytes'), mutations: mutationsArb(3) }) },
);

/** Mostly what the directory was created with, sometimes not; each of cluster and shards is
 *  left out half the time (then the file alone says what they are). */
const expectationArb: fc.Arbitrary<NodeDirExpectation> = fc
  .record({
    clusterId: fc.option(fc.constantFrom('c1', 'c1', 'c1', 'c2'), { freq: 2, nil: undefined }),
    nodeId: fc.constantFrom(1, 1, 1, 2),
    shards: fc.option(fc.constantFrom(16, 16, 16, 8), { freq: 2, nil: undefined }),
  })
  .map((e) => {
    const out: NodeDirExpectation = { nodeId: e.nodeId };
    if (e.clusterId !== undefined) out.clusterId = e.clusterId;
    if (e.shards !== undefined) out.shards = e.shards;
    return out;
  });

const codes = ['CORRUPT_STATE', 'VERSION_MISMATCH', 'CONFIG'];

/** An opened directory is the one the caller expects, with an identity that makes sense. */
function expectIdentity(opened: ReturnType<typeof openNodeDir>, e: NodeDirExpectation): void {
  const { identity, created } = opened;
  expect(created).toBe(false);
  expect(identity.format).toBe('flotilla-node');
  expect(identity.version).toBe(1);
  expect(identity.nodeId).toBe(e.nodeId);
  if (e.clusterId !== undefined) expect(identity.clusterId).toBe(e.clusterId);
  expect(typeof identity.clusterId === 'string' && identity.clusterId !== '').toBe(true);
  expect(Number.isInteger(identity.shards)).toBe(true);
  expect(identity.shards >= 1 && identity.shards <= shardsMax).toBe(true);
  if (e.shards !== undefined) expect(identity.shards).toBe(e.shards);
}

function edited(text: string, e: IdentityEdit): string {
  if (e.kind === 'bytes') return Buffer.from(mutate(Buffer.from(text), e.mutations)).toString();
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    // An earlier byte mutation broke the JSON: field edits no longer apply.
    if (!(err instanceof SyntaxError)) throw err;
    return text;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return text;
  const record = doc as Record<string, unknown>;
  const field = fields[e.field % fields.length]!;
  if (e.remove) delete record[field];
  else record[field] = e.value;
  return JSON.stringify(record);
}

describe('fuzz: node.json (engine/node-dir.ts)', () => {
  it(
    'opens a mutated identity as expected, or refuses it with a typed error and writes nothing',
    () => {
      let n = 0;
      fc.assert(
        fc.property(
          fc.array(editArb, { minLength: 1, maxLength: 2 }),
          expectationArb,
          (edits, expectation) => {
            const dir = join(root, `n${n++}`);
            openNodeDir(dir, { clusterId: 'c1', nodeId: 1, shards: 16 });
            const file = join(dir, 'node.json');
            let text = readFileSync(file, 'utf8');
            for (const e of edits) text = edited(text, e);
            writeFileSync(file, text);
            let opened: ReturnType<typeof openNodeDir> | undefined;
            try {
              opened = openNodeDir(dir, expectation);
            } catch (err) {
              expect(err).toBeInstanceOf(FlotillaError);
              expect(codes).toContain((err as FlotillaError).code);
            }
            if (opened !== undefined) expectIdentity(opened, expectation);
            expect(readFileSync(file, 'utf8')).toBe(text);
            rmSync(dir, { recursive: true, force: true });
          },
        ),
        fuzzParams('node identity', 150, 20),
      );
    },
    fuzzTimeoutMs,
  );
});
