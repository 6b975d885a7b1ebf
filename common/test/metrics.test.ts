/**
 * `FoldedCounter`: what a scrape shows is exactly what the same increments made directly on a
 * prom-client counter show (series, label order, values, help), and it never moves back.
 */
import { Counter } from 'prom-client';
import { describe, expect, it } from 'vitest';

import { FoldedCounter, Registry } from '../src/metrics.js';

const configuration = {
  name: 'impulse_test_messages_total',
  help: 'Messages, by peer, group and type.',
  labelNames: ['peer', 'group', 'type'] as const,
};

type Labels = Record<'peer' | 'group' | 'type', string>;

/** The same increments on a direct counter and on a folded one, in registries of their own. */
function twins(): {
  direct: Registry;
  folded: Registry;
  inc(labels: Labels, value?: number): void;
  foldedCounter: FoldedCounter<'peer' | 'group' | 'type'>;
} {
  const direct = new Registry();
  const folded = new Registry();
  for (const registry of [direct, folded]) registry.setDefaultLabels({ node: 'n1' });
  const counter = new Counter({ ...configuration, registers: [direct] });
  const foldedCounter = new FoldedCounter({ ...configuration, registers: [folded] });
  const series = new Map<string, ReturnType<typeof foldedCounter.series>>();
  return {
    direct,
    folded,
    foldedCounter,
    inc(labels, value) {
      counter.inc(labels, value);
      const key = JSON.stringify(labels);
      let kept = series.get(key);
      if (kept === undefined) {
        kept = foldedCounter.series(labels);
        series.set(key, kept);
      }
      kept.inc(value);
    },
  };
}

describe('FoldedCounter', () => {
  it('scrapes exactly as direct increments do, the same on a scrape without increments', async () => {
    const { direct, folded, inc } = twins();
    expect(await folded.metrics()).toBe(await direct.metrics());
    inc({ peer: 'b', group: 'g1', type: 'MsgApp' });
    inc({ peer: 'b', group: 'g1', type: 'MsgApp' }, 3);
    inc({ peer: 'c', group: 'g2', type: 'MsgHeartbeat' }, 0); // A series at 0, as inc(labels, 0) makes.
    const first = await folded.metrics();
    expect(first).toBe(await direct.metrics());
    expect(first).toContain('impulse_test_messages_total{peer="b",group="g1",type="MsgApp",node="n1"} 4');
    expect(first).toContain(
      'impulse_test_messages_total{peer="c",group="g2",type="MsgHeartbeat",node="n1"} 0',
    );
    expect(await folded.metrics()).toBe(first);
    inc({ peer: 'b', group: 'g1', type: 'MsgApp' }, 2);
    inc({ peer: 'b', group: 'g2', type: 'MsgAppResp' });
    const second = await folded.metrics();
    expect(second).toBe(await direct.metrics());
    expect(second).toContain('impulse_test_messages_total{peer="b",group="g1",type="MsgApp",node="n1"} 6');
    expect(await folded.metrics()).toBe(second);
    expect(await folded.getMetricsAsJSON()).toEqual(await direct.getMetricsAsJSON());
  });

  it('adds the counts of two series of one label set', async () => {
    const registry = new Registry();
    const counter = new FoldedCounter({ ...configuration, registers: [registry] });
    const labels = { peer: 'b', group: 'g1', type: 'MsgApp' };
    // A replica restarted in the same process resolves its series again.
    const before = counter.series(labels);
    before.inc(5);
    expect((await counter.counter.get()).values).toEqual([{ labels, value: 5 }]);
    const after = counter.series(labels);
    after.inc(2);
    before.inc(1);
    expect((await counter.counter.get()).values).toEqual([{ labels, value: 8 }]);
  });

  it('refuses a negative or non-finite increment at the call', () => {
    const counter = new FoldedCounter({ ...configuration, registers: [new Registry()] });
    const series = counter.series({ peer: 'b', group: 'g1', type: 'MsgApp' });
    expect(() => series.inc(-1)).toThrow(RangeError);
    expect(() => series.inc(Number.NaN)).toThrow(RangeError);
    expect(() => series.inc(Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });
});
