import fc from 'fast-check';
import { describe, it } from 'vitest';
import { MemoryLogStore } from '../../../engine/log/memory-log.js';
import { logStoreConformance } from './conformance.js';
import { command, Driver } from './crash-scenario.js';
import { expectLogEquals } from './model.js';

logStoreConformance('MemoryLogStore', { open: async () => new MemoryLogStore() });

describe('MemoryLogStore (property)', () => {
  it('equals the plain model after any sequence of calls', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { maxLength: 120, size: 'max' }), async (commands) => {
        const log = new MemoryLogStore();
        const driver = new Driver(new Map(), log);
        for (const cmd of commands) await driver.run(cmd);
        expectLogEquals(log, driver.model);
      }),
      { numRuns: 200 },
    );
  });
});
