/**
 * One run of the node simulator, deterministic from its seed: `nodes` simulated nodes, each
 * hosting one production replica of each of `groups` Raft groups (the memory engine over a
 * `MemoryFileSystem`), clients against every group (the last one falls idle after 500 ms, so that
 * it keeps its nodes' oldest log segments until they ask it to compact), and a fault schedule of
 * partitions, lossy links, pauses, crashes and power cuts that hit whole nodes, and, when one is
 * asked for, a targeted schedule (`targeted-schedules.ts`). Then the faults heal and the run
 * checks that:
 * - no group ever had two leaders in one term (election safety);
 * - no leader stayed in office longer than CheckQuorum allows without hearing from a quorum;
 * - no replica failed and no callback threw (a failure is a bug of the host or the simulator);
 * - every group serves again, and its replicas converge to the same applied index and state;
 * - each group's history, final reads included, is linearizable (so no acknowledged write was lost).
 */
import { checkHistory, type HistoryCheck } from '@impulse/common';
import type { MemberSpec, MembershipChange, ReadMode, Replica } from '../../replica/index.js';
import { Prng } from '../prng.js';
import { NodeClock, SimTime } from './sim-clock.js';
import { CheckQuorumWatch } from './check-quorum-watch.js';
import { SimClients, type SimClientsOptions } from './sim-clients.js';
import { SimNetwork, calmLinks, simPeerPort } from './sim-network.js';
import { SimNode, type SimPlant, type SimTiming } from './sim-node.js';
import { runTargetedSchedule, type TargetedSchedule } from './targeted-schedules.js';

export interface NodeSimulationOptions {
  readonly seed: number;
  readonly nodes: number;
  readonly groups: number;
  /** Simulated milliseconds of client load under faults. */
  readonly durationMs: number;
  readonly readMode?: ReadMode;
  /** Which faults the schedule draws from (default: all). */
  readonly faults?: Partial<FaultKinds>;
  /** Search steps per key for the linearizability checker. */
  readonly stepsPerKeyMax?: number;
  /** The Raft logs of a node: one shared by its replicas (default), or one per replica. */
  readonly logs?: 'node' | 'replica';
  /** A planted bug (mutation tests only). */
  readonly plant?: SimPlant;
  /** Called with a line for each fault and phase (for `--verbose`). */
  readonly trace?: (line: string) => void;
  /**
   * Whether each node's heartbeats of a round for another node travel as one coalesced heartbeat,
   * as the node transport sends them (default false).
   */
  readonly coalesceHeartbeats?: boolean;
  /**
   * A targeted schedule, run with the random faults (`targeted-schedules.ts`): the sequences that
   * expose the planted bugs random faults seldom reach. `figure8` also sends one entry per MsgApp.
   */
  readonly schedule?: TargetedSchedule;
  /** The clients, when not the default ones (3 per group, 4 keys each, a 4 s deadline). */
  readonly clients?: Partial<
    Pick<SimClientsOptions, 'clientsPerGroup' | 'keysPerGroup' | 'operationDeadlineMs'>
  >;
}

export interface FaultKinds {
  readonly partitions: boolean;
  readonly linkFaults: boolean;
  readonly pauses: boolean;
  readonly crashes: boolean;
  readonly powerCuts: boolean;
  /**
   * Replica moves: a replica of a group is added on a node that does not host the group (as a
   * learner, caught up by snapshot, then promoted) and one of the group's replicas is removed (its
   * node deletes its data), as rebalancing moves replicas between nodes. A spare node, hosting
   * nothing at first, gives the moves somewhere to go.
   */
  readonly moves: boolean;
}

const allFaults: FaultKinds = {
  partitions: true,
  linkFaults: true,
  pauses: true,
  crashes: true,
  powerCuts: true,
  moves: true,
};

export interface NodeSimulationResult {
  readonly seed: number;
  readonly problems: readonly string[];
  readonly linearizable: HistoryCheck['result'] | 'not-checked';
  readonly operations: { readonly ok: number; readonly unknown: number; readonly attempts: number };
  readonly faults: Readonly<Record<string, number>>;
  readonly network: SimNetwork['counters'];
  /** Compactions the nodes asked of groups that kept their log's oldest segments, by outcome. */
  readonly forcedCompactions: Readonly<Record<string, number>>;
  readonly simulatedMs: number;
}

const timing: Omit<SimTiming, 'readMode'> = {
  tickIntervalMs: 10,
  electionTimeoutTicks: 10,
  heartbeatTicks: 1,
  snapshotEntries: 40,
  snapshotCatchUpEntries: 10,
  proposalTimeoutMs: 2_000,
  // The smallest segment a log takes (4 KiB): a node's log rotates every few dozen entries, so
  // that groups between two of their own compactions, idle groups and groups a fault left behind
  // keep its oldest segments, and the node asks them to compact early in every run
  // (`log-purge.ts`). Replica logs (`--logs replica`) rotate as often.
  logSegmentBytesMax: 4096,
  logPurge: { segmentsThreshold: 4, checkIntervalMs: 100 },
};

/** Simulated time given to the groups to elect leaders before the clients start. */
const warmUpMs = 1_000;
/** Simulated time after the faults heal, for the groups to serve and converge again. */
const healMs = 3_000;
/**
 * How long a leader may lead after it last heard from a quorum: CheckQuorum steps it down within
 * two election timeouts of its ticks; two ticks more cover the phase between its tick timer and the
 * watch's.
 */
const checkQuorumBoundMs = (2 * timing.electionTimeoutTicks + 2) * timing.tickIntervalMs;

export async function runNodeSimulation(options: NodeSimulationOptions): Promise<NodeSimulationResult> {
  if (options.plant?.coalescer !== undefined && options.coalesceHeartbeats !== true)
    throw new Error('sim: a planted bug of the coalescer needs coalesceHeartbeats');
  const faults = { ...allFaults, ...options.faults };
  const problems: string[] = [];
  const trace = options.trace ?? ((): void => {});
  const time = new SimTime();
  const seedPrng = new Prng(options.seed);
  const network = new SimNetwork(time, new Prng(seedPrng.int(2 ** 31)), {
    coalesceHeartbeats: options.coalesceHeartbeats ?? false,
    ...(options.plant?.coalescer === undefined ? {} : { coalescerMutant: options.plant.coalescer }),
  });
  const nemesisPrng = new Prng(seedPrng.int(2 ** 31));
  const clientPrng = new Prng(seedPrng.int(2 ** 31));
  const nodePrng = new Prng(seedPrng.int(2 ** 31));
  // Drawn last, so that the other generators draw as they did before targeted schedules existed.
  const schedulePrng = new Prng(seedPrng.int(2 ** 31));
  const groups = Array.from({ length: options.groups }, (_, index) => `g${index + 1}`);
  // The founding nodes host a replica of every group; a spare one, when replicas move, none.
  const spareNodes = faults.moves ? 1 : 0;
  const nodeNames = Array.from({ length: options.nodes + spareNodes }, (_, index) => `n${index + 1}`);
  const memberSpec = (group: string, node: string, raftId: number): MemberSpec => ({
    raftId,
    replicaId: `${group}@${node}#${raftId}`,
    url: `http://${node}`,
    peerHost: node,
    peerPort: simPeerPort,
  });
  const founders = (group: string): MemberSpec[] =>
    nodeNames.slice(0, options.nodes).map((name, index) => memberSpec(group, name, index + 1));
  const nodes = nodeNames.map(
    (name, index) =>
      new SimNode({
        name,
        founding:
          index >= options.nodes
            ? []
            : groups.map((group) => ({
                groupId: group,
                self: memberSpec(group, name, index + 1),
                initialMembers: founders(group),
                join: false,
                bootstrap: true,
              })),
        time,
        network,
        prng: nodePrng,
        timing: {
          ...timing,
          readMode: options.readMode ?? 'readindex',
          ...(options.schedule === 'figure8' ? { messageBytesMax: 0 } : {}),
        },
        ...(options.plant === undefined ? {} : { plant: options.plant }),
        ...(options.logs === undefined ? {} : { logs: options.logs }),
        onForcedCompaction: (node, group, outcome) => {
          forcedCompactions[outcome] = (forcedCompactions[outcome] ?? 0) + 1;
          trace(`${time.nowMs} ${node}: asked ${group} to compact early: ${outcome}`);
        },
        onFailure: (node, group, error) =>
          problems.push(`replica ${group}@${node} failed: ${(error as Error).stack ?? String(error)}`),
      }),
  );
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown): void => void rejections.push(reason);
  process.on('unhandledRejection', onRejection);
  const faultCounts: Record<string, number> = {};
  const forcedCompactions: Record<string, number> = {};
  const count = (kind: string): void => void (faultCounts[kind] = (faultCounts[kind] ?? 0) + 1);
  const clients = new SimClients(
    {
      groups,
      clientsPerGroup: options.clients?.clientsPerGroup ?? 3,
      keysPerGroup: options.clients?.keysPerGroup ?? 4,
      operationDeadlineMs: options.clients?.operationDeadlineMs ?? 4_000,
      retryPauseMs: 30,
      thinkMsMax: 20,
      readFraction: 0.4,
      deleteFraction: 0.1,
      // The last group falls idle early: its replicas keep their nodes' oldest log segments while
      // the other groups write, until the nodes ask them to compact.
      ...(groups.length > 1 ? { quiet: { group: groups[groups.length - 1] as string, afterMs: 500 } } : {}),
    },
    time,
    clientPrng,
    {
      nodeNames: () => nodeNames,
      replicaOf: (node, group) => nodes.find((candidate) => candidate.name === node)?.replicas.get(group),
    },
  );
  try {
    const starting = (node: SimNode): void => {
      node
        .start()
        .catch((error: unknown) => problems.push(`${node.name} failed to start: ${(error as Error).stack}`));
    };
    for (const node of nodes) starting(node);
    // Election safety, watched on every tick: one leader per term per group; and CheckQuorum.
    const leaders = new Map<string, string>();
    const checkQuorum = new CheckQuorumWatch(checkQuorumBoundMs);
    const monitor = new NodeClock(time, 0);
    monitor.setInterval(() => {
      for (const node of nodes) {
        if (node.state !== 'up') continue;
        for (const [group, replica] of node.replicas) {
          const status = replica.status();
          const outstayed = checkQuorum.check(
            node.name,
            group,
            replica,
            status,
            network.heardBy(node.name, group),
            node.resumedAtMs,
            time.nowMs,
          );
          if (outstayed !== undefined) problems.push(outstayed);
          if (status.role !== 'leader') continue;
          const key = `${group}/${status.term}`;
          const known = leaders.get(key);
          const leader = `${node.name}#${status.raftId}`;
          if (known === undefined) leaders.set(key, leader);
          else if (known !== leader)
            problems.push(
              `election safety: ${group} has two leaders in term ${status.term}: ${known} and ${leader}`,
            );
        }
      }
    }, timing.tickIntervalMs);
    await time.runUntil(warmUpMs);
    clients.start();

    // The fault schedule: one action every 100 to 600 ms; each fault heals on its own timer.
    const nemesis = new NodeClock(time, 0);
    const sleep = (ms: number): Promise<void> => new Promise((resolve) => nemesis.setTimeout(resolve, ms));
    const nextRaftId = new Map(groups.map((group) => [group, options.nodes + 1]));
    const moving = new Map<string, Promise<void>>();
    /** The group's leader, as the running replicas see it, waiting up to `waitMs` for one. */
    const leaderOf = async (group: string, waitMs: number): Promise<Replica | undefined> => {
      const deadlineMs = time.nowMs + waitMs;
      for (;;) {
        for (const node of nodes) {
          const replica = node.state === 'up' ? node.replicas.get(group) : undefined;
          if (replica?.status().role === 'leader') return replica;
        }
        if (time.nowMs >= deadlineMs) return undefined;
        await sleep(20);
      }
    };
    /** Asks the leader for a membership change until it applies or `waitMs` passes. */
    const change = async (group: string, request: MembershipChange, waitMs: number): Promise<boolean> => {
      const deadlineMs = time.nowMs + waitMs;
      while (time.nowMs < deadlineMs) {
        const leader = await leaderOf(group, deadlineMs - time.nowMs);
        if (leader === undefined) return false;
        try {
          // A leader whose node crashes never answers: the nemesis gives up on its own clock.
          await Promise.race([
            leader.changeMembership(request),
            sleep(timing.proposalTimeoutMs * 2).then(() => {
              throw new Error('no answer (the leader crashed or paused)');
            }),
          ]);
          return true;
        } catch (error) {
          trace(`${time.nowMs} ${group}: ${request.type} refused: ${(error as Error).message}`);
          await sleep(100);
        }
      }
      return false;
    };
    /**
     * Moves a replica of `group` from `source` to `target`: adds a learner on the target, promotes
     * it once it caught up, then removes the source's replica, whose node deletes its data. A
     * step that cannot be done in time leaves the group as it is (a learner that never caught up
     * is removed again). Membership changes may apply even when their caller timed out; after
     * the heal, `reconcile` removes the replicas their groups no longer list.
     */
    const move = async (group: string, source: SimNode, target: SimNode): Promise<void> => {
      const raftId = nextRaftId.get(group) as number;
      nextRaftId.set(group, raftId + 1);
      const member = memberSpec(group, target.name, raftId);
      trace(`${time.nowMs} move ${group}: ${source.name} -> ${target.name} (raft id ${raftId})`);
      const current = nodes
        .filter((node) => node.hosts(group))
        .map((node) => node.memberOf(group) as MemberSpec);
      if (!(await change(group, { type: 'addLearner', member }, 2_000))) return;
      await target.addReplica({
        groupId: group,
        self: member,
        initialMembers: current,
        join: true,
        bootstrap: false,
      });
      if (!(await change(group, { type: 'promote', raftId }, 4_000))) {
        trace(`${time.nowMs} move ${group}: the learner on ${target.name} never caught up; removing it`);
        if (await change(group, { type: 'remove', raftId }, 2_000)) await target.removeReplica(group);
        return;
      }
      const sourceId = (source.memberOf(group) as MemberSpec).raftId;
      if (!(await change(group, { type: 'remove', raftId: sourceId }, 3_000))) return;
      await source.removeReplica(group);
      count('move-completed');
      trace(`${time.nowMs} move ${group}: ${source.name} -> ${target.name} completed`);
    };
    /**
     * What placement does after moves it lost track of: a change may apply although its caller
     * timed out (its leader crashed or paused before answering), and then a node still hosts a
     * replica its group removed, which rightly never catches up. Each group's configuration is read
     * from its leader once that leader has applied everything committed before its term (a read
     * barrier: no older change can apply after it), and the replicas it does not list are removed.
     */
    const reconcile = async (): Promise<void> => {
      for (const group of groups) {
        const deadlineMs = time.nowMs + 10_000;
        while (time.nowMs < deadlineMs) {
          const leader = await leaderOf(group, deadlineMs - time.nowMs);
          if (leader === undefined) break;
          const barrier = await Promise.race([
            leader.readBarrier().then(
              () => true,
              () => false,
            ),
            sleep(timing.proposalTimeoutMs).then(() => false),
          ]);
          if (!barrier) continue;
          const { voters, learners } = leader.status();
          const members = new Set([...voters, ...learners]);
          for (const node of nodes) {
            const self = node.memberOf(group);
            if (self === undefined || members.has(self.raftId)) continue;
            trace(
              `${time.nowMs} reconcile ${group}: ${node.name} hosts raft id ${self.raftId}, removed; removing it`,
            );
            await node.removeReplica(group);
          }
          break;
        }
      }
    };
    const down = new Set<SimNode>();
    const endMs = warmUpMs + options.durationMs;
    const targeted = settled(
      options.schedule === undefined
        ? Promise.resolve()
        : runTargetedSchedule(options.schedule, {
            nodes,
            groups,
            network,
            clients,
            clock: nemesis,
            prng: schedulePrng,
            start: starting,
            trace,
            count,
            ended: () => time.nowMs >= endMs,
          }).catch(
            (error: unknown) =>
              void problems.push(`the ${options.schedule} schedule failed: ${(error as Error).stack}`),
          ),
    );
    while (time.nowMs < endMs) {
      await time.runUntil(Math.min(endMs, time.nowMs + nemesisPrng.between(100, 600)));
      if (time.nowMs >= endMs) break;
      const kinds = (Object.keys(faults) as (keyof FaultKinds)[]).filter((kind) => faults[kind]);
      if (kinds.length === 0) continue;
      const kind = kinds[nemesisPrng.int(kinds.length)] as keyof FaultKinds;
      const up = nodes.filter((node) => node.state === 'up');
      const victim = up.length === 0 ? undefined : (up[nemesisPrng.int(up.length)] as SimNode);
      switch (kind) {
        case 'partitions': {
          const shuffled = nemesisPrng.shuffle([...nodeNames]);
          const split = nemesisPrng.between(1, nodeNames.length - 1);
          network.partition(shuffled.slice(0, split), shuffled.slice(split));
          const healAfterMs = nemesisPrng.between(100, 1_500);
          trace(
            `${time.nowMs} partition ${shuffled.slice(0, split).join(',')} | ${shuffled.slice(split).join(',')} for ${healAfterMs} ms`,
          );
          nemesis.setTimeout(() => network.heal(), healAfterMs);
          count('partition');
          break;
        }
        case 'linkFaults': {
          network.faults = {
            dropProbability: nemesisPrng.between(1, 20) / 100,
            duplicateProbability: nemesisPrng.between(0, 10) / 100,
            delayMsMin: 1,
            delayMsMax: nemesisPrng.between(5, 60),
          };
          const calmAfterMs = nemesisPrng.between(200, 2_000);
          trace(`${time.nowMs} lossy links ${JSON.stringify(network.faults)} for ${calmAfterMs} ms`);
          nemesis.setTimeout(() => (network.faults = calmLinks), calmAfterMs);
          count('link-faults');
          break;
        }
        case 'pauses': {
          if (victim === undefined) break;
          // From shorter than a client's retry to several election timeouts.
          const resumeAfterMs = nemesisPrng.between(20, 1_500);
          trace(`${time.nowMs} pause ${victim.name} for ${resumeAfterMs} ms`);
          victim.pause();
          nemesis.setTimeout(() => victim.resume(), resumeAfterMs);
          count('pause');
          break;
        }
        case 'moves': {
          const group = groups[nemesisPrng.int(groups.length)] as string;
          if (moving.has(group)) break;
          const targets = up.filter((node) => !node.hosts(group));
          const sources = nodes.filter((node) => node.hosts(group));
          if (targets.length === 0 || sources.length === 0) break;
          const target = targets[nemesisPrng.int(targets.length)] as SimNode;
          const source = sources[nemesisPrng.int(sources.length)] as SimNode;
          const moved = move(group, source, target)
            .catch(
              (error: unknown) => void problems.push(`move of ${group} failed: ${(error as Error).stack}`),
            )
            .finally(() => moving.delete(group));
          moving.set(group, moved);
          count('move');
          break;
        }
        case 'crashes':
        case 'powerCuts': {
          if (victim === undefined) break;
          const power = kind === 'powerCuts';
          // Now and then a power cut takes every node at once: what was acknowledged was synced.
          const targets =
            power && nemesisPrng.chance(0.15) ? nodes.filter((node) => node.state !== 'down') : [victim];
          const restartAfterMs = nemesisPrng.between(50, 1_500);
          trace(
            `${time.nowMs} ${power ? 'power cut' : 'kill'} ${targets.map((node) => node.name).join(',')}, restart after ${restartAfterMs} ms`,
          );
          for (const target of targets) {
            target.resume();
            target.crash(power ? 'power' : 'kill');
            down.add(target);
          }
          nemesis.setTimeout(() => {
            for (const target of targets) {
              if (target.state !== 'down' || !down.delete(target)) continue;
              starting(target);
            }
          }, restartAfterMs);
          count(power ? (targets.length > 1 ? 'power-cut-all' : 'power-cut') : 'kill');
          break;
        }
      }
    }

    // Heal: every link, every pause, every node up again; then the groups must serve and converge.
    // A targeted schedule changes nothing from now on (its last round winds down on its own).
    trace(`${time.nowMs} heal`);
    const movesDone = settled(Promise.all(moving.values()));
    network.heal();
    network.faults = calmLinks;
    for (const node of nodes) {
      node.resume();
      if (node.state === 'down') starting(node);
    }
    down.clear();
    const stopped = settled(clients.stop());
    await time.runUntil(time.nowMs + healMs);
    // Bounded: a client or a move that never ends is a liveness failure, not a hang of the run.
    const settleDeadlineMs = time.nowMs + 60_000;
    while ((!stopped.done || !movesDone.done || !targeted.done) && time.nowMs < settleDeadlineMs)
      await time.runUntil(time.nowMs + 100);
    if (!stopped.done || !movesDone.done || !targeted.done)
      problems.push(
        `liveness: ${!stopped.done ? 'a client' : !movesDone.done ? 'a replica move' : `the ${options.schedule} schedule`} did not end within 60 s after the heal`,
      );
    const reconciled = settled(reconcile());
    const reconcileDeadlineMs = time.nowMs + 60_000;
    while (!reconciled.done && time.nowMs < reconcileDeadlineMs) await time.runUntil(time.nowMs + 100);
    if (!reconciled.done) problems.push('liveness: reconciling the moves did not end within 60 s');
    const finalReads = settled(clients.readAll());
    const readsDeadlineMs = time.nowMs + 60_000;
    while (!finalReads.done && time.nowMs < readsDeadlineMs) await time.runUntil(time.nowMs + 100);
    await time.runUntil(time.nowMs + 1_000);
    problems.push(...(await convergenceProblems(nodes, groups)));
    const finalFailures = clients.history.filter(
      (event) => event.client >= 1_000_000 && event.type !== 'ok' && event.type !== 'invoke',
    );
    if (finalFailures.length > 0)
      problems.push(`liveness: ${finalFailures.length} final reads did not complete after the faults healed`);
    for (const error of time.errors)
      problems.push(`a simulated callback threw: ${(error as Error).stack ?? String(error)}`);
    for (const reason of rejections)
      problems.push(`unhandled rejection: ${(reason as Error).stack ?? String(reason)}`);
    const check = checkHistory(clients.history, { stepsPerKeyMax: options.stepsPerKeyMax ?? 200_000 });
    if (check.result === 'not-linearizable') {
      problems.push(
        `not linearizable: key ${check.counterexample?.key}: ${JSON.stringify(check.counterexample?.operations.slice(0, 12))}`,
      );
    }
    return {
      seed: options.seed,
      problems,
      linearizable: check.result,
      operations: {
        ok: clients.counters.ok,
        unknown: clients.counters.unknown,
        attempts: clients.counters.attempts,
      },
      faults: faultCounts,
      network: network.counters,
      forcedCompactions,
      simulatedMs: time.nowMs,
    };
  } finally {
    process.off('unhandledRejection', onRejection);
    for (const node of nodes) node.crash('kill');
  }
}

/** Every group's running replicas must have applied the same index and hold the same keys. */
async function convergenceProblems(nodes: readonly SimNode[], groups: readonly string[]): Promise<string[]> {
  const problems: string[] = [];
  for (const group of groups) {
    const states: { node: string; applied: number; content: string }[] = [];
    for (const node of nodes) {
      if (!node.hosts(group)) continue;
      const replica: Replica | undefined = node.replicas.get(group);
      if (replica === undefined) {
        problems.push(`convergence: ${group}@${node.name} is not running after the heal`);
        continue;
      }
      const pairs: string[] = [];
      for await (const entry of replica.scan({ start: undefined, end: undefined }, 1_000_000, 'stale'))
        pairs.push(`${Buffer.from(entry.key).toString()}=${Buffer.from(entry.value).toString()}`);
      states.push({ node: node.name, applied: replica.status().appliedIndex, content: pairs.join(';') });
    }
    const describe = (): string =>
      nodes
        .flatMap((node) => {
          const replica = node.replicas.get(group);
          if (replica === undefined) return [];
          const status = replica.status();
          return [
            `${node.name}: r${status.raftId} ${status.role} term ${status.term} leader ${status.leaderId} commit ${status.commitIndex} applied ${status.appliedIndex} log ${status.firstIndex}-${status.lastIndex} voters [${status.voters.join(',')}] learners [${status.learners.join(',')}] members [${status.members.map((member) => member.raftId).join(',')}]`,
          ];
        })
        .join('; ');
    const [first, ...rest] = states;
    for (const other of rest) {
      if (first === undefined) break;
      if (other.applied !== first.applied)
        problems.push(
          `convergence: ${group} applied ${first.applied} on ${first.node} but ${other.applied} on ${other.node} (${describe()})`,
        );
      else if (other.content !== first.content)
        problems.push(
          `convergence: ${group} differs between ${first.node} and ${other.node} at index ${first.applied}`,
        );
    }
  }
  return problems;
}

function settled(promise: Promise<unknown>): { done: boolean } {
  const state = { done: false };
  void promise.finally(() => (state.done = true));
  return state;
}
