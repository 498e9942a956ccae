/**
 * RaftConfig for tests, the simulator and benchmarks: the engine's limits (engine/limits.ts),
 * test-sized where a test needs to hit a bound, and a seeded random source.
 */
import { defaultRaftTunables } from '../../engine/host.js';
import type { RaftConfig } from '../../engine/raft/ready.js';
import { SeededRandom } from '../../engine/random.js';

/** A configuration with the engine's defaults, PreVote and CheckQuorum on, safe reads. */
export function raftTestConfig(
  id: number,
  group = 1,
  overrides: Partial<RaftConfig> = {},
): RaftConfig {
  return {
    ...defaultRaftTunables(),
    id,
    group,
    random: new SeededRandom(id * 7919 + group),
    ...overrides,
  };
}
