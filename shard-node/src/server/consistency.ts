import {
  Counter,
  ImpulseError,
  adminHeaders,
  groupHeader,
  metricPrefix,
  type Logger,
  type Registry,
} from '@impulse/common';
import type { Replica } from '../replica/index.js';

/** How long the leader waits for every member's hash at the check's index. */
export const consistencyCheckWaitMs = 10_000;
/** How often the leader asks a member that has not reported yet. */
const consistencyPollIntervalMs = 100;
/** How long one poll of a member may take. */
const consistencyPollTimeoutMs = 2_000;

/** One member's answer in a consistency check. */
export interface ReplicaConsistency {
  readonly replicaId: string;
  /** The hash of its state at the check's index; null when it did not report one in time. */
  readonly hash: string | null;
  readonly keys: number | null;
  /** Whether its hash is the one most replicas report (the leader's on a tie). */
  readonly matches: boolean;
  /** Why there is no hash, when there is none. */
  readonly error?: string;
}

export interface ConsistencyReport {
  readonly index: number;
  readonly replicas: readonly ReplicaConsistency[];
  /** True when every member reported a hash at the index and all are equal. */
  readonly consistent: boolean;
  /**
   * Whether a verdict was committed: a majority of the voters agreed on the reference hash, and
   * the divergent members, told so through the log, rebuild themselves from the leader's snapshot.
   */
  readonly verdictCommitted: boolean;
}

/** What `GET /admin/consistency` answers: this replica's newest hash, or nulls before its first. */
export interface ConsistencyHashAnswer {
  readonly replicaId: string;
  readonly index: number | null;
  readonly hash: string | null;
  readonly keys: number | null;
}

export function consistencyHashAnswer(replica: Replica): ConsistencyHashAnswer {
  const result = replica.consistencyHash;
  return {
    replicaId: replica.status().replicaId,
    index: result?.index ?? null,
    hash: result?.hash ?? null,
    keys: result?.keys ?? null,
  };
}

/**
 * Replica consistency checks, run by the leader (TiKV and CockroachDB run the same): a check entry
 * goes through Raft, every member hashes its state exactly as of that entry's index, in the
 * background, and the leader collects the hashes over HTTP (`GET /admin/consistency` of each
 * member) and compares them. A member whose hash differs from the one most members report is
 * logged and counted. When a majority of the voters agree on that hash, the leader commits it as a
 * verdict through the log: each replica compares its own hash at the check's index with it, and a
 * divergent one enters a storage fault and is rebuilt from the leader's snapshot, as after any
 * storage fault (docs/replication.md). Without such a majority, nobody can tell which is right,
 * and the operator decides.
 */
export class ConsistencyChecker {
  readonly #metrics: ConsistencyMetrics;
  readonly #groupId: string;
  /** The headers of a poll: the group, and this process's admin token (the cluster's). */
  readonly #pollHeaders: Record<string, string>;
  #running = false;

  /**
   * `adminToken` is this process's: every member is given the same one, and asks it of the
   * leader's polls of `GET /admin/consistency` as of any admin request.
   */
  constructor(
    private readonly replica: Replica,
    private readonly logger: Logger,
    registry: Registry,
    adminToken?: Uint8Array,
  ) {
    this.#groupId = replica.status().groupId;
    // The member may be a node hosting many groups: it answers for its replica of this one.
    this.#pollHeaders = { [groupHeader]: this.#groupId, ...adminHeaders(adminToken) };
    this.#metrics = consistencyMetricsOf(registry);
    // Every series from the start, at 0, so that an alert on an increase sees the first one.
    for (const outcome of ['consistent', 'inconsistent', 'incomplete'])
      this.#metrics.checks.inc({ group: this.#groupId, outcome }, 0);
    this.#metrics.mismatches.inc({ group: this.#groupId }, 0);
  }

  /**
   * Runs a check every `intervalMs` while this replica leads (a follower's timer does nothing, so
   * whichever replica leads runs them), and answers the function that stops it. A check that
   * fails (leadership lost, the group busy) is logged and the next one runs on time.
   */
  startPeriodic(intervalMs: number): () => void {
    const timer = setInterval(() => {
      if (this.#running || this.replica.status().role !== 'leader') return;
      this.run().catch((error: unknown) => {
        this.logger.warn({ err: error }, 'consistency: periodic check failed');
      });
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** Runs one check (leader only; one at a time) and answers what every member reported. */
  async run(): Promise<ConsistencyReport> {
    if (this.#running)
      throw new ImpulseError('TOO_MANY_REQUESTS', 'a consistency check is already running on this replica');
    this.#running = true;
    try {
      return await this.check();
    } finally {
      this.#running = false;
    }
  }

  private async check(): Promise<ConsistencyReport> {
    const index = await this.replica.proposeConsistencyCheck();
    const status = this.replica.status();
    const deadline = Date.now() + consistencyCheckWaitMs;
    const answers = await Promise.all(
      status.members.map(async (member) => ({
        replicaId: member.replicaId,
        answer:
          member.replicaId === status.replicaId
            ? await this.waitForOwn(index, deadline)
            : await this.poll(member.url, index, deadline),
      })),
    );
    // The reference is the hash most members report; on a tie, the leader's own.
    const counts = new Map<string, number>();
    for (const { answer } of answers) {
      if (answer.hash !== undefined) counts.set(answer.hash, (counts.get(answer.hash) ?? 0) + 1);
    }
    const own = answers.find(({ replicaId }) => replicaId === status.replicaId)?.answer.hash;
    let reference: string | undefined;
    for (const [hash, count] of counts) {
      const best = reference === undefined ? 0 : (counts.get(reference) ?? 0);
      if (count > best || (count === best && hash === own)) reference = hash;
    }
    const replicas: ReplicaConsistency[] = answers.map(({ replicaId, answer }) =>
      answer.hash === undefined
        ? { replicaId, hash: null, keys: null, matches: false, error: answer.error }
        : { replicaId, hash: answer.hash, keys: answer.keys, matches: answer.hash === reference },
    );
    const divergent = replicas.filter((replica) => replica.hash !== null && !replica.matches);
    const missing = replicas.filter((replica) => replica.hash === null);
    for (const replica of divergent) {
      this.#metrics.mismatches.inc({ group: this.#groupId });
      this.logger.error(
        { index, divergentReplicaId: replica.replicaId, hash: replica.hash, keys: replica.keys, reference },
        'consistency: replica diverges from its group; rebuild it (docs/replication.md)',
      );
    }
    for (const replica of missing) {
      this.logger.warn(
        { index, replicaId: replica.replicaId, cause: replica.error },
        'consistency: replica reported no hash in time',
      );
    }
    const outcome = divergent.length > 0 ? 'inconsistent' : missing.length > 0 ? 'incomplete' : 'consistent';
    this.#metrics.checks.inc({ group: this.#groupId, outcome });
    let verdictCommitted = false;
    if (divergent.length > 0 && reference !== undefined) {
      const voterIds = new Set(
        status.members
          .filter((member) => status.voters.includes(member.raftId))
          .map((member) => member.replicaId),
      );
      const agreeing = replicas.filter(
        (replica) => replica.matches && voterIds.has(replica.replicaId),
      ).length;
      if (agreeing > status.voters.length / 2) {
        await this.replica.proposeConsistencyVerdict(index, reference);
        verdictCommitted = true;
        this.logger.warn(
          { index, reference, divergentReplicaIds: divergent.map((replica) => replica.replicaId) },
          'consistency: verdict committed; the divergent replicas rebuild themselves from the leader',
        );
      } else {
        this.logger.error(
          { index, agreeing, voters: status.voters.length },
          'consistency: no majority of the voters agrees on one hash; no replica is rebuilt (docs/replication.md)',
        );
      }
    }
    this.logger.info({ index, outcome, members: replicas.length }, 'consistency: check done');
    return { index, replicas, consistent: outcome === 'consistent', verdictCommitted };
  }

  private async waitForOwn(index: number, deadline: number): Promise<Answer> {
    for (;;) {
      const result = this.replica.consistencyHash;
      if (result !== undefined && result.index >= index) return answerAt(index, result);
      if (Date.now() >= deadline) return { error: `no hash at index ${index} within the wait` };
      await sleep(consistencyPollIntervalMs);
    }
  }

  private async poll(url: string, index: number, deadline: number): Promise<Answer> {
    let lastError = `no hash at index ${index} within the wait`;
    for (;;) {
      try {
        const response = await fetch(`${url}/admin/consistency`, {
          headers: this.#pollHeaders,
          signal: AbortSignal.timeout(consistencyPollTimeoutMs),
        });
        if (response.ok) {
          const body = (await response.json()) as Partial<ConsistencyHashAnswer>;
          if (typeof body.index === 'number' && body.index >= index)
            return answerAt(index, { index: body.index, hash: String(body.hash), keys: Number(body.keys) });
        } else {
          await response.arrayBuffer();
          lastError =
            response.status === 401
              ? 'GET /admin/consistency answered 401 ADMIN_UNAUTHORIZED: the member was given another admin token than this one'
              : `GET /admin/consistency answered ${response.status}`;
        }
      } catch (error) {
        lastError = `GET /admin/consistency failed: ${error instanceof Error ? error.message : String(error)}`;
      }
      if (Date.now() >= deadline) return { error: lastError };
      await sleep(consistencyPollIntervalMs);
    }
  }
}

interface ConsistencyMetrics {
  readonly checks: Counter<'group' | 'outcome'>;
  readonly mismatches: Counter<'group'>;
}

const consistencyMetricsByRegistry = new WeakMap<Registry, ConsistencyMetrics>();

/** The consistency checks' metrics, one set per registry, a series per group. */
function consistencyMetricsOf(registry: Registry): ConsistencyMetrics {
  let metrics = consistencyMetricsByRegistry.get(registry);
  if (metrics === undefined) {
    metrics = {
      checks: new Counter({
        name: `${metricPrefix}replica_consistency_checks_total`,
        help: 'Consistency checks this replica ran as leader of its group, by group and outcome: consistent, inconsistent (a member hashed differently), incomplete (a member did not report in time).',
        labelNames: ['group', 'outcome'] as const,
        registers: [registry],
      }),
      mismatches: new Counter({
        name: `${metricPrefix}replica_consistency_mismatches_total`,
        help: 'Members found by a consistency check (run by this replica as leader), by group, whose state differs from the majority: a divergent replica, to be rebuilt.',
        labelNames: ['group'] as const,
        registers: [registry],
      }),
    };
    consistencyMetricsByRegistry.set(registry, metrics);
  }
  return metrics;
}

type Answer =
  { readonly hash: string; readonly keys: number } | { readonly hash?: undefined; readonly error: string };

/** A member's hash if it is the one at `index`; a later check's hash cannot be compared. */
function answerAt(index: number, result: { index: number; hash: string; keys: number }): Answer {
  if (result.index !== index)
    return { error: `its newest hash is at index ${result.index}, a later check than ${index}` };
  return { hash: result.hash, keys: result.keys };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
