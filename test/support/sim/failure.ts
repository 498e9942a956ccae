/**
 * How a simulation fails: a broken property, named by kind, with a message that says what was
 * seen. Checks record the first failure instead of throwing where they run (a throw inside an
 * engine callback would land in the engine, not in the driver); the driver raises it at the
 * next quiescent point.
 */

/** The properties the simulator checks, and the ways a run can go wrong. */
export type FailureKind =
  /** Two leaders of one shard in one term. */
  | 'election-safety'
  /** Two replicas hold the same (index, term) after different log prefixes. */
  | 'log-matching'
  /** An entry at or below a replica's durable commit index differs from the committed one. */
  | 'committed-changed'
  /** A leader lacks an entry that was committed. */
  | 'leader-completeness'
  /** A replica lacking a committed entry could win an election (the entry could be lost). */
  | 'committed-unsafe'
  /** Replicas applied different writes at the same position of a shard's apply sequence. */
  | 'apply-order'
  /** Replicas at the same applied index have different state checksums. */
  | 'state-divergence'
  /** A client request (one session and sequence number) took effect twice. */
  | 'exactly-once'
  /** An acknowledged write is not in the committed log. */
  | 'lost-write'
  /** The session table refused a request that no later request of its session had passed. */
  | 'session'
  /** After healing, a shard elected no leader, took no write or did not converge in time. */
  | 'liveness'
  /** The client history has no linearization (or its check was inconclusive). */
  | 'linearizability'
  /** A node failed in a way the simulator did not inject (I/O failure, refused restart...). */
  | 'engine-fault'
  /** Something threw: an engine assertion, or a bug of the simulator itself. */
  | 'exception';

/** A failed simulation. */
export class SimFailure extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
  ) {
    super(`${kind}: ${message}`);
    this.name = 'SimFailure';
  }
}
