import { describe, expect, it } from 'vitest';
import { chaosSchedule } from '../src/chaos/chaos-run.js';
import { parseNemeses } from '../src/chaos/chaos-command.js';
import { clientStream, scheduleStream, streamSeed } from '../src/chaos/fault-schedule.js';
import { checkServing } from '../src/chaos/serving-check.js';
import { BypassWatch, establishedConnections } from '../src/chaos/bypass-watch.js';

const all = parseNemeses('all', { shape: 'replicas', nodes: 0, replicasPerGroup: 3 });

describe('the fault schedule', () => {
  it('is the same for the same seed: the same faults at the same offsets', () => {
    const first = chaosSchedule({ seed: 7, timeSeconds: 300, nemeses: all, groups: 3 });
    const second = chaosSchedule({ seed: 7, timeSeconds: 300, nemeses: all, groups: 3 });
    expect(second).toEqual(first);
    expect(first.faults.length).toBeGreaterThan(30);
    expect(first.replacements.length).toBeGreaterThan(8);
    expect(chaosSchedule({ seed: 8, timeSeconds: 300, nemeses: all, groups: 3 })).not.toEqual(first);
  });

  it('keeps its offsets when the run is longer: a longer run extends the schedule of a shorter one', () => {
    const short = chaosSchedule({ seed: 7, timeSeconds: 60, nemeses: all, groups: 3 });
    const long = chaosSchedule({ seed: 7, timeSeconds: 300, nemeses: all, groups: 3 });
    expect(long.faults.slice(0, short.faults.length)).toEqual(short.faults);
  });

  it('holds one fault at a time, inside the run, every kind in each round', () => {
    const schedule = chaosSchedule({ seed: 42, timeSeconds: 120, nemeses: all, groups: 3 });
    let previousEnd = 0;
    for (const fault of schedule.faults) {
      expect(fault.atSeconds).toBeGreaterThanOrEqual(previousEnd + 1);
      expect(fault.atSeconds).toBeLessThan(120);
      previousEnd = fault.atSeconds + fault.holdSeconds;
    }
    expect(new Set(schedule.faults.slice(0, 4).map((fault) => fault.nemesis))).toEqual(
      new Set(['kill', 'pause', 'partition', 'power']),
    );
  });

  it('cuts the power of one replica, a minority, the leader or a whole group, held as long as a kill', () => {
    const plan = (seed: number, nemeses: string): ReturnType<typeof chaosSchedule> =>
      chaosSchedule({
        seed,
        timeSeconds: 3_000,
        nemeses: parseNemeses(nemeses, { shape: 'replicas', nodes: 0, replicasPerGroup: 3 }),
        groups: 3,
      });
    const cuts = plan(5, 'power').faults;
    expect(cuts.length).toBeGreaterThan(100);
    expect(new Set(cuts.map((fault) => fault.nemesis))).toEqual(new Set(['power']));
    expect(new Set(cuts.map((fault) => fault.mode))).toEqual(
      new Set(['one replica', 'minority', 'leader', 'whole group']),
    );
    for (const cut of cuts) {
      expect(cut.holdSeconds).toBeGreaterThanOrEqual(2);
      expect(cut.holdSeconds).toBeLessThanOrEqual(8);
    }
    // Still a pure function of the seed with power cuts among the faults.
    expect(plan(5, 'power')).toEqual(plan(5, 'power'));
    expect(plan(5, 'kill,power')).toEqual(plan(5, 'kill,power'));
    expect(plan(6, 'power')).not.toEqual(plan(5, 'power'));
    // The power cuts of a mixed schedule come in their turn, a quarter of the faults with all four kinds.
    const mixed = plan(5, 'all').faults;
    const powerCount = mixed.filter((fault) => fault.nemesis === 'power').length;
    expect(Math.abs(powerCount - mixed.length / 4)).toBeLessThanOrEqual(1);
  });

  it('leaves the schedule of a run without power cuts as it was before they existed', () => {
    // Seed 7, 60 s, kill/pause/partition/member: the schedule as drawn before the power nemesis.
    const schedule = chaosSchedule({
      seed: 7,
      timeSeconds: 60,
      nemeses: parseNemeses('kill,pause,partition,member', {
        shape: 'replicas',
        nodes: 0,
        replicasPerGroup: 3,
      }),
      groups: 3,
    });
    expect([
      ...schedule.faults.map(
        (fault) => `${fault.atSeconds.toFixed(3)} ${fault.nemesis} ${fault.mode} ${fault.group}`,
      ),
      ...schedule.replacements.map(
        (replacement) => `${replacement.atSeconds.toFixed(3)} member ${replacement.group}`,
      ),
    ]).toEqual([
      '1.158 pause random replica g1',
      '3.375 partition halves g1',
      '9.605 kill random replica g2',
      '19.885 kill leader g1',
      '30.765 pause random replica g2',
      '42.030 partition halves g2',
      '49.726 pause random replica g2',
      '57.353 kill leader g1',
      '15.909 member g2',
      '33.274 member g2',
      '43.952 member g1',
      '56.405 member g2',
    ]);
  });

  it('draws pauses from short (under the gateway attempt timeout) to long (several election timeouts)', () => {
    const pauses = chaosSchedule({
      seed: 3,
      timeSeconds: 3_000,
      nemeses: parseNemeses('pause', { shape: 'replicas', nodes: 0, replicasPerGroup: 3 }),
      groups: 3,
    }).faults.map((fault) => fault.holdSeconds);
    expect(pauses.length).toBeGreaterThan(100);
    const short = pauses.filter((seconds) => seconds < 1.5);
    const long = pauses.filter((seconds) => seconds >= 3);
    expect(short.length + long.length).toBe(pauses.length);
    expect(short.length).toBeGreaterThan(pauses.length / 4);
    expect(long.length).toBeGreaterThan(pauses.length / 4);
    expect(Math.min(...pauses)).toBeGreaterThanOrEqual(0.1);
    expect(Math.max(...pauses)).toBeLessThanOrEqual(10);
  });

  it('gives the schedule and every client streams of their own', () => {
    const seeds = [scheduleStream, ...Array.from({ length: 200 }, (_, client) => clientStream(client))].map(
      (stream) => streamSeed(7, stream),
    );
    expect(new Set(seeds).size).toBe(seeds.length);
  });
});

describe('the serving check', () => {
  const options = { windowSeconds: 5, graceSeconds: 5, operationsMin: 20 };

  it('passes a cluster that serves in every fault-free window, whatever it does during faults', () => {
    const okPerSecond = [...Array(10).fill(50), ...Array(10).fill(0), ...Array(15).fill(50)] as number[];
    expect(
      checkServing({ faults: [{ startSeconds: 10, endSeconds: 20 }], okPerSecond, endSeconds: 35, options }),
    ).toEqual([]);
  });

  it('fails a cluster that stopped serving after a fault healed', () => {
    const okPerSecond = [...Array(10).fill(50), ...Array(25).fill(0)] as number[];
    const problems = checkServing({
      faults: [{ startSeconds: 10, endSeconds: 20 }],
      okPerSecond,
      endSeconds: 35,
      options,
    });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/only 0 successful operations from 25 s to 30 s/);
  });

  it('counts an unhealed fault as lasting to the end', () => {
    const okPerSecond = Array(30).fill(0) as number[];
    expect(
      checkServing({
        faults: [{ startSeconds: 2, endSeconds: undefined }],
        okPerSecond,
        endSeconds: 30,
        options,
      }),
    ).toEqual([]);
  });
});

describe('the proxy bypass watch', () => {
  const header =
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
  const row = (local: number, remote: number, state = '01'): string =>
    `   0: 0100007F:${local.toString(16).toUpperCase().padStart(4, '0')} 0100007F:${remote
      .toString(16)
      .toUpperCase()
      .padStart(4, '0')} ${state} 00000000:00000000 00:00000000 00000000     0        0 1 1`;

  it('reads the established connections of /proc/net/tcp', () => {
    expect(establishedConnections([header, row(8101, 40000), row(8102, 0, '0A')].join('\n'))).toEqual([
      { localPort: 8101, remotePort: 40000 },
    ]);
  });

  it('counts, once, a connection to a real peer port that stays unexplained by the proxy', async () => {
    let table = [header, row(8101, 40000), row(8101, 40001), row(9999, 40002)].join('\n');
    // The proxy's socket 40001 goes to another listener: the same local port, another connection.
    const proxyConnections = new Set(['40000->8101', '40001->8102']);
    const watch = new BypassWatch({
      listenPorts: () => [8101, 8102],
      proxyConnections: () => proxyConnections,
      nowSeconds: () => 1,
      readTable: () => Promise.resolve(table),
    });
    await watch.poll();
    expect(watch.bypasses).toEqual([]);
    await watch.poll();
    await watch.poll();
    expect(watch.bypasses).toEqual([{ listenPort: 8101, remotePort: 40001, seenSeconds: 1 }]);
    // A proxy socket whose port the proxy learns a moment late is not counted.
    table = [header, row(8102, 40003)].join('\n');
    await watch.poll();
    proxyConnections.add('40003->8102');
    await watch.poll();
    expect(watch.bypasses).toHaveLength(1);
  });
});
