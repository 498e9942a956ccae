/**
 * ProposalLedger: every tracked proposal is settled exactly once, by the committed log.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProposalLedger } from '../../../engine/raft/proposal-ledger.js';
import { type Entry, EntryType } from '../../../engine/raft/types.js';

function committed(terms: number[], from: number): Entry[] {
  return terms.map((term, k) => ({
    term,
    index: from + k,
    type: EntryType.Normal,
    data: new Uint8Array(0),
  }));
}

describe('ProposalLedger', () => {
  it('consecutive proposals of one term share one range', () => {
    const ledger = new ProposalLedger(1);
    for (let i = 5; i < 100; i++) ledger.track(3, i);
    expect(ledger.hasDrops()).toBe(false);
    ledger.track(4, 100); // a second range exceeds the bound of 1: the oldest is given up
    expect(ledger.takeDrops()).toEqual([
      { term: 3, fromIndex: 5, toIndex: 99, reason: 'untracked' },
    ]);
  });

  it('reports exactly the indexes where the committed term differs', () => {
    const ledger = new ProposalLedger(8);
    for (let i = 2; i <= 6; i++) ledger.track(1, i);
    ledger.settleCommitted(committed([1, 1, 2, 2, 1, 2], 1)); // indexes 1..6
    expect(ledger.takeDrops()).toEqual([
      { term: 1, fromIndex: 3, toIndex: 4, reason: 'superseded' },
      { term: 1, fromIndex: 6, toIndex: 6, reason: 'superseded' },
    ]);
    expect(ledger.isIdle()).toBe(true);
  });

  it('a snapshot settles what it covers: definite only for terms newer than its own', () => {
    const ledger = new ProposalLedger(8);
    ledger.track(2, 3);
    ledger.track(5, 4);
    ledger.track(5, 5);
    ledger.settleSnapshot(4, 3);
    expect(ledger.takeDrops()).toEqual([
      { term: 2, fromIndex: 3, toIndex: 3, reason: 'snapshot' },
      { term: 5, fromIndex: 4, toIndex: 4, reason: 'superseded' },
    ]);
    expect(ledger.isIdle()).toBe(false); // index 5 is beyond the snapshot
  });

  it('settles every proposal exactly once, whatever the batches of committed entries', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 60 }),
        fc.array(fc.integer({ min: 1, max: 60 }), { minLength: 1, maxLength: 60 }),
        fc.array(fc.integer({ min: 1, max: 10 }), { minLength: 1, maxLength: 20 }),
        (proposalTerms, committedTerms, batches) => {
          const ledger = new ProposalLedger(1000);
          for (const [k, t] of proposalTerms.entries()) ledger.track(t, k + 1);
          const log = committedTerms.slice(0, proposalTerms.length).sort((a, b) => a - b);
          const dropped = new Set<number>();
          let next = 1;
          for (const size of [...batches, log.length]) {
            const batch = log.slice(next - 1, next - 1 + size);
            if (batch.length === 0) break;
            ledger.settleCommitted(committed(batch, next));
            next += batch.length;
            for (const d of ledger.takeDrops() ?? []) {
              for (let i = d.fromIndex; i <= d.toIndex; i++) {
                expect(dropped.has(i)).toBe(false);
                dropped.add(i);
              }
            }
          }
          for (let i = 1; i <= log.length; i++) {
            expect(dropped.has(i)).toBe(log[i - 1] !== proposalTerms[i - 1]);
          }
        },
      ),
    );
  });
});
