/**
 * Histories of a real atomic register, for tests and the checker's benchmark: every operation
 * takes effect at one instant between its invocation and its completion, in the order of those
 * instants, so a generated history is linearizable by construction (until a test plants a bug).
 */
import type { HistoryEvent, OperationFunction } from './history.js';

export interface RegisterHistoryOptions {
  /** Seed of every choice; the same options give the same history. */
  readonly seed: number;
  /** Bursts, one after another, on one key. */
  readonly bursts: number;
  /**
   * Writes per burst (puts and deletes), all invoked before the first of them returns: they are
   * pairwise concurrent, and every order of them respects real time.
   */
  readonly burstWrites: number;
  /** Reads per burst, overlapping the writes and the quiet after them. */
  readonly burstReads: number;
  /** Share of the writes that are deletes, in [0, 1]. */
  readonly deleteShare: number;
  /**
   * Share of the writes whose client never learns the outcome (`info`), in [0, 1]: half of them
   * take effect, half do not.
   */
  readonly indeterminateShare: number;
  /** The key; default `k`. */
  readonly key?: string;
}

interface PlannedOperation {
  readonly client: number;
  readonly f: OperationFunction;
  /** The value a put writes (unique: `<burst>-<index>`). */
  readonly value: string | undefined;
  readonly invokeTime: number;
  readonly effectTime: number;
  readonly returnTime: number;
  /** `ok`, or `info` with the effect applied or not. */
  readonly outcome: 'ok' | 'info-applied' | 'info-lost';
}

/** Ticks one burst's writes take to be invoked; their effects and returns come after. */
const burstTicks = 1000;

/** Generates the events of one key's history; see `RegisterHistoryOptions`. */
export function generateRegisterHistory(options: RegisterHistoryOptions): HistoryEvent[] {
  const random = seededRandom(options.seed);
  const between = (low: number, high: number): number => low + Math.floor(random() * (high - low + 1));
  const key = options.key ?? 'k';
  const planned: PlannedOperation[] = [];
  let client = 0;
  for (let burst = 0; burst < options.bursts; burst += 1) {
    const start = burst * 5 * burstTicks;
    for (let index = 0; index < options.burstWrites; index += 1) {
      const invokeTime = between(start, start + burstTicks - 1);
      const effectTime = between(start + burstTicks, start + 2 * burstTicks);
      const isDelete = random() < options.deleteShare;
      const roll = random();
      planned.push({
        client: client++,
        f: isDelete ? 'delete' : 'put',
        value: isDelete ? undefined : `${burst}-${index}`,
        invokeTime,
        effectTime,
        returnTime: effectTime + between(0, burstTicks),
        outcome:
          roll < options.indeterminateShare / 2
            ? 'info-applied'
            : roll < options.indeterminateShare
              ? 'info-lost'
              : 'ok',
      });
    }
    // Reads from the start of the burst to well after its last write returned.
    for (let index = 0; index < options.burstReads; index += 1) {
      const invokeTime = between(start, start + 4 * burstTicks);
      const effectTime = invokeTime + between(0, burstTicks / 4);
      planned.push({
        client: client++,
        f: 'get',
        value: undefined,
        invokeTime,
        effectTime,
        returnTime: effectTime + between(0, burstTicks / 4),
        outcome: 'ok',
      });
    }
  }

  // Apply the effects in the order of their instants (ties in plan order) to one register.
  const reads = new Map<PlannedOperation, string | null>();
  let register: string | null = null;
  const byEffect = planned
    .map((op, order) => ({ op, order }))
    .sort((a, b) => a.op.effectTime - b.op.effectTime || a.order - b.order);
  for (const { op } of byEffect) {
    if (op.outcome === 'info-lost') continue;
    if (op.f === 'get') reads.set(op, register);
    else register = op.f === 'put' ? op.value! : null;
  }

  const events: { event: HistoryEvent; isCompletion: boolean; order: number }[] = [];
  planned.forEach((op, order) => {
    const base = { client: op.client, f: op.f, key };
    events.push({
      event: {
        ...base,
        type: 'invoke',
        time: op.invokeTime,
        ...(op.value === undefined ? {} : { value: op.value }),
      },
      isCompletion: false,
      order,
    });
    events.push({
      event: {
        ...base,
        type: op.outcome === 'ok' ? 'ok' : 'info',
        time: op.returnTime,
        ...(op.f === 'get' ? { value: reads.get(op) ?? null } : {}),
      },
      isCompletion: true,
      order,
    });
  });
  // Time order; at equal times invocations first (the checker treats them as concurrent anyway).
  events.sort(
    (a, b) =>
      a.event.time - b.event.time || Number(a.isCompletion) - Number(b.isCompletion) || a.order - b.order,
  );
  return events.map(({ event }) => event);
}

/** splitmix32: a small seeded generator of numbers in [0, 1). */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return ((z ^ (z >>> 16)) >>> 0) / 0x1_0000_0000;
  };
}
