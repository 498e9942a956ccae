/**
 * RaftConfig for tests, the simulator and benchmarks: the engine's limits (engine/limits.ts),
 * test-sized where a test needs to hit a bound, and a seeded random source.
 */
import {
  raftCommittedBytesPerReadyMax,
  raftElectionTicks,
  raftHeartbeatTicks,
  raftInflightBytesMax,
  raftInflightMsgsMax,
  raftLeaseMarginTicks,
  raftMessagesQueuedMax,
  raftMsgBytesMax,
  raftProposalRangesMax,
  raftReadsPendingMax,
  raftUncommittedBytesMax,
} from '../../engine/limits.js';
import type { RaftConfig } from '../../engine/raft/ready.js';
import { SeededRandom } from '../../engine/random.js';

/** A configuration with the engine's defaults, PreVote and CheckQuorum on, safe reads. */
export function raftTestConfig(
  id: number,
  group = 1,
  overrides: Partial<RaftConfig> = {},
): RaftConfig {
  return {
    id,
    group,
    electionTicks: raftElectionTicks,
    heartbeatTicks: raftHeartbeatTicks,
    random: new SeededRandom(id * 7919 + group),
    preVote: true,
    checkQuorum: true,
    inflightMsgsMax: raftInflightMsgsMax,
    inflightBytesMax: raftInflightBytesMax,
    msgBytesMax: raftMsgBytesMax,
    uncommittedBytesMax: raftUncommittedBytesMax,
    committedBytesPerReadyMax: raftCommittedBytesPerReadyMax,
    readsPendingMax: raftReadsPendingMax,
    messagesQueuedMax: raftMessagesQueuedMax,
    proposalRangesMax: raftProposalRangesMax,
    readOnlyOption: 'safe',
    leaseMarginTicks: raftLeaseMarginTicks,
    ...overrides,
  };
}
