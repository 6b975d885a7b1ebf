/**
 * The chaos workload: clients that read, write and delete a small, rotating set of registers
 * through the gateway, recording every operation for the linearizability checker, plus writes of
 * fresh keys that must all be readable at the end (the lost-write count).
 *
 * Keys are used by many clients at once so that operations collide, and each key retires after
 * `operationsPerKeyMax` operations, as Jepsen's independent keys do: the checker's search is
 * exponential in the concurrency of one key's history, never in its length across keys.
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { pathForKey, type HistoryEvent } from '@impulse/common';

export interface RegisterWorkloadOptions {
  readonly gatewayUrl: string;
  /** Concurrent clients, each with at most one operation outstanding. */
  readonly clients: number;
  /** Registers in use at any moment. */
  readonly keysActive: number;
  /** Operations one register receives before a fresh one replaces it. */
  readonly operationsPerKeyMax: number;
  /** A request with no answer within this is abandoned and recorded as indeterminate. */
  readonly requestTimeoutMs: number;
  /** Share of operations that write a fresh key once (checked for loss at the end). */
  readonly uniqueWriteFraction: number;
  /** A client waits this long (times 1 to 2, at random) after an indeterminate or failed operation. */
  readonly backoffMs: number;
  /** Keys start with this, so that runs never share keys. */
  readonly keyPrefix: string;
  /**
   * Each client's own random stream (which key, which operation, how long to back off): one
   * client's choices never depend on how many operations the others completed.
   */
  readonly randomOf: (client: number) => () => number;
  /** Each history event as it happens (the run streams them to a file). */
  readonly onEvent?: (event: HistoryEvent) => void;
}

/** What happened in one second of the run (by completion time). */
export interface WorkloadSecond {
  ok: number;
  fail: number;
  info: number;
  latenciesMs: number[];
}

export interface WorkloadOutcome {
  readonly events: readonly HistoryEvent[];
  readonly seconds: readonly WorkloadSecond[];
  /** Fresh keys whose write was acknowledged, with the value written. */
  readonly acknowledgedUniqueWrites: ReadonlyMap<string, string>;
  /** Every register key the run used, for the final reads. */
  readonly registerKeys: readonly string[];
  readonly counts: { readonly ok: number; readonly fail: number; readonly info: number };
}

/** How long the final reads may keep retrying a cluster that is still recovering. */
const finalReadsTimeoutMs = 60_000;

type Outcome =
  | { readonly type: 'ok'; readonly value?: string | null }
  | { readonly type: 'fail'; readonly reason: string }
  | { readonly type: 'info'; readonly reason: string };

/**
 * Error codes that say the write was refused for its input, before it could take effect. Refusals
 * for the cluster's state (NOT_READY, TOO_MANY_REQUESTS, ...) are not among them: the gateway
 * retries, and an earlier attempt of the same request may have been applied.
 */
const definiteWriteRefusals = new Set([
  'INVALID_KEY',
  'INVALID_ENCODING',
  'INVALID_REQUEST',
  'VALUE_TOO_LARGE',
  'METHOD_NOT_ALLOWED',
  'ROUTE_NOT_FOUND',
]);

export class RegisterWorkload {
  private readonly events: HistoryEvent[] = [];
  private readonly seconds: WorkloadSecond[] = [];
  private readonly acknowledgedUniqueWrites = new Map<string, string>();
  private readonly registerKeys: string[] = [];
  private readonly slots: Array<{ key: string; operations: number }> = [];
  private readonly agent: Agent;
  private readonly url: URL;
  private readonly startedAtMs = performance.now();
  private readonly counts = { ok: 0, fail: 0, info: 0 };
  private generation = 0;
  private running = true;
  private clientLoops: Array<Promise<void>> = [];

  constructor(private readonly options: RegisterWorkloadOptions) {
    this.url = new URL(options.gatewayUrl);
    this.agent = new Agent({ keepAlive: true, maxSockets: options.clients + 8 });
    for (let slot = 0; slot < options.keysActive; slot++) this.slots.push(this.freshSlot());
  }

  /** Milliseconds since the workload started (the history's clock). */
  nowMs(): number {
    return performance.now() - this.startedAtMs;
  }

  start(): void {
    this.clientLoops = Array.from({ length: this.options.clients }, (_, client) => this.runClient(client));
  }

  /** Stops issuing operations and waits for the outstanding ones. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.clientLoops);
  }

  /**
   * After the faults: one linearizable read of every register, recorded in the history (so that a
   * lost register write shows up as a read the checker cannot place), and one read of every fresh
   * key whose write was acknowledged. Answers the fresh keys that are missing or wrong.
   */
  async finalReads(): Promise<string[]> {
    const client = this.options.clients;
    const deadlineMs = Date.now() + finalReadsTimeoutMs;
    for (const key of this.registerKeys) {
      for (;;) {
        const outcome = await this.perform(client, 'get', key, undefined, true);
        if (outcome.type === 'ok') break;
        // The cluster was healed and given time to recover: a key that stays unreadable is a
        // finding too, reported by the caller.
        if (Date.now() > deadlineMs) throw new Error(`final read of ${key} failed: ${outcome.reason}`);
        await sleep(this.options.backoffMs);
      }
    }
    const lost: string[] = [];
    const entries = [...this.acknowledgedUniqueWrites];
    const batchSize = 32;
    for (let start = 0; start < entries.length; start += batchSize) {
      await Promise.all(
        entries.slice(start, start + batchSize).map(async ([key, value]) => {
          for (;;) {
            const answer = await this.send('GET', key, undefined);
            if (answer.type === 'answer' && (answer.status === 200 || answer.status === 404)) {
              if (answer.status !== 200 || answer.body !== value) lost.push(`${key} (${answer.status})`);
              return;
            }
            if (Date.now() > deadlineMs) {
              throw new Error(
                `final read of ${key} failed: ${answer.type === 'error' ? answer.reason : answer.status}`,
              );
            }
            await sleep(this.options.backoffMs);
          }
        }),
      );
    }
    return lost;
  }

  outcome(): WorkloadOutcome {
    return {
      events: this.events,
      seconds: this.seconds,
      acknowledgedUniqueWrites: this.acknowledgedUniqueWrites,
      registerKeys: this.registerKeys,
      counts: { ...this.counts },
    };
  }

  close(): void {
    this.agent.destroy();
  }

  private freshSlot(): { key: string; operations: number } {
    const key = `${this.options.keyPrefix}-r${this.generation++}`;
    this.registerKeys.push(key);
    return { key, operations: 0 };
  }

  private pickRegister(random: () => number): string {
    const index = Math.floor(random() * this.slots.length);
    let slot = this.slots[index] as { key: string; operations: number };
    if (slot.operations >= this.options.operationsPerKeyMax) {
      slot = this.freshSlot();
      this.slots[index] = slot;
    }
    slot.operations++;
    return slot.key;
  }

  private async runClient(client: number): Promise<void> {
    let sequence = 0;
    const random = this.options.randomOf(client);
    while (this.running) {
      const draw = random();
      let outcome: Outcome;
      if (draw < this.options.uniqueWriteFraction) {
        const key = `${this.options.keyPrefix}-u${client}-${sequence}`;
        const value = `${client}-${sequence++}`;
        outcome = await this.perform(client, 'put', key, value, false);
        if (outcome.type === 'ok') this.acknowledgedUniqueWrites.set(key, value);
      } else {
        const key = this.pickRegister(random);
        const choice = random();
        if (choice < 0.5) outcome = await this.perform(client, 'get', key, undefined, true);
        else if (choice < 0.9)
          outcome = await this.perform(client, 'put', key, `${client}-${sequence++}`, true);
        else outcome = await this.perform(client, 'delete', key, undefined, true);
      }
      if (outcome.type !== 'ok' && this.running) {
        // Back off like a real client: piling operations onto a group that cannot answer only
        // grows the set of indeterminate writes the checker must place.
        await sleep(this.options.backoffMs * (1 + random()));
      }
    }
  }

  private async perform(
    client: number,
    f: 'get' | 'put' | 'delete',
    key: string,
    value: string | undefined,
    recorded: boolean,
  ): Promise<Outcome> {
    const invokedAtMs = this.nowMs();
    if (recorded)
      this.record({
        client,
        type: 'invoke',
        f,
        key,
        ...(value === undefined ? {} : { value }),
        time: invokedAtMs,
      });
    const answer = await this.send(f === 'get' ? 'GET' : f === 'put' ? 'PUT' : 'DELETE', key, value);
    const outcome = classify(f, answer);
    const completedAtMs = this.nowMs();
    if (recorded) {
      this.record({
        client,
        type: outcome.type,
        f,
        key,
        ...(f === 'get' && outcome.type === 'ok' ? { value: outcome.value ?? null } : {}),
        time: completedAtMs,
      });
    }
    this.count(outcome.type, completedAtMs - invokedAtMs, completedAtMs);
    return outcome;
  }

  private record(event: HistoryEvent): void {
    this.events.push(event);
    this.options.onEvent?.(event);
  }

  private count(type: Outcome['type'], latencyMs: number, completedAtMs: number): void {
    const index = Math.floor(completedAtMs / 1000);
    while (this.seconds.length <= index) this.seconds.push({ ok: 0, fail: 0, info: 0, latenciesMs: [] });
    const second = this.seconds[index] as WorkloadSecond;
    second[type]++;
    this.counts[type]++;
    if (type === 'ok') second.latenciesMs.push(latencyMs);
  }

  private send(
    method: string,
    key: string,
    value: string | undefined,
  ): Promise<{ type: 'answer'; status: number; body: string } | { type: 'error'; reason: string }> {
    return new Promise((resolve) => {
      const body = value === undefined ? undefined : Buffer.from(value);
      const outgoing = request(
        {
          agent: this.agent,
          host: this.url.hostname,
          port: this.url.port,
          method,
          path: pathForKey(key),
          headers: { 'content-length': body?.byteLength ?? 0 },
          timeout: this.options.requestTimeoutMs,
        },
        (incoming) => {
          const chunks: Buffer[] = [];
          incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
          incoming.on('end', () =>
            resolve({
              type: 'answer',
              status: incoming.statusCode ?? 0,
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          incoming.on('error', (error) => resolve({ type: 'error', reason: error.message }));
        },
      );
      outgoing.on('timeout', () =>
        outgoing.destroy(new Error(`no answer within ${this.options.requestTimeoutMs} ms`)),
      );
      outgoing.on('error', (error) => resolve({ type: 'error', reason: error.message }));
      outgoing.end(body);
    });
  }
}

/**
 * What an answer says about an operation. A read that failed had no effect, whatever the reason.
 * A write is definite only when acknowledged or refused for its input; every other failure (a
 * timeout, a reset connection, a 503 after the gateway's retries) may have been applied.
 */
function classify(
  f: 'get' | 'put' | 'delete',
  answer: { type: 'answer'; status: number; body: string } | { type: 'error'; reason: string },
): Outcome {
  if (answer.type === 'error') {
    return f === 'get' ? { type: 'fail', reason: answer.reason } : { type: 'info', reason: answer.reason };
  }
  const code = errorCodeOf(answer.body);
  if (f === 'get') {
    if (answer.status === 200) return { type: 'ok', value: answer.body };
    if (answer.status === 404 && code === 'NOT_FOUND') return { type: 'ok', value: null };
    return { type: 'fail', reason: `${answer.status} ${code ?? ''}` };
  }
  if (answer.status === 204) return { type: 'ok' };
  if (code !== undefined && definiteWriteRefusals.has(code)) {
    return { type: 'fail', reason: `${answer.status} ${code}` };
  }
  return { type: 'info', reason: `${answer.status} ${code ?? ''}` };
}

function errorCodeOf(body: string): string | undefined {
  if (!body.startsWith('{')) return undefined;
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown } };
    return typeof parsed.error?.code === 'string' ? parsed.error.code : undefined;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
