import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { checkHistory, type HistoryEvent } from '@impulse/common';
import { checkHistoryCommand, parseHistory } from '../../common/src/linearizability/check-history-main.js';

const here = new URL('.', import.meta.url).pathname;
/** Histories recorded by 300 s chaos runs (`npm run chaos -- --time 300 ...`), gzipped JSON lines. */
const recorded = readdirSync(here).filter((name) => name.endsWith('.history.jsonl.gz'));

/**
 * A recorded chaos history replays through the checker as it did in its run (linearizable), and
 * the same history with one read made stale is refused: the replay is able to fail.
 */
describe.each(recorded)('recorded chaos history %s', (name) => {
  const file = join(here, name);
  const events = parseHistory(gunzipSync(readFileSync(file)).toString('utf8'));

  it('is linearizable, through the command as through the library', () => {
    expect(events.length).toBeGreaterThan(100_000);
    let stdout = '';
    const exitCode = checkHistoryCommand([file], {
      stdout: (text) => (stdout += text),
      stderr: () => undefined,
    });
    expect(stdout).toMatch(/^linearizable: true$/m);
    expect(exitCode).toBe(0);
  }, 120_000);

  it('is refused with one read made stale', () => {
    const stale = withOneStaleRead(events);
    expect(checkHistory(stale).result).toBe('not-linearizable');
  }, 120_000);
});

/**
 * The history with one successful read changed to answer the value of a write that an earlier,
 * completed write had already overwritten before the read began (values are unique per write).
 */
function withOneStaleRead(events: readonly HistoryEvent[]): HistoryEvent[] {
  interface Done {
    readonly client: number;
    readonly key: string;
    readonly value: string | null | undefined;
    readonly invokedAt: number;
    readonly completedAt: number;
    readonly completion: number;
  }
  const invoked = new Map<number, { event: HistoryEvent; index: number }>();
  const puts = new Map<string, Done[]>();
  for (const [index, event] of events.entries()) {
    if (event.type === 'invoke') {
      invoked.set(event.client, { event, index });
      continue;
    }
    const start = invoked.get(event.client);
    invoked.delete(event.client);
    if (start === undefined || event.type !== 'ok') continue;
    const done: Done = {
      client: event.client,
      key: event.key,
      value: start.event.value ?? event.value,
      invokedAt: start.event.time,
      completedAt: event.time,
      completion: index,
    };
    if (event.f === 'put') {
      const list = puts.get(event.key) ?? [];
      list.push(done);
      puts.set(event.key, list);
    }
    if (event.f !== 'get' || typeof event.value !== 'string') continue;
    // Two puts on the key, the first over before the second began, the second over before this
    // read began: the read cannot see the first.
    const before = (puts.get(event.key) ?? []).filter((put) => put.completedAt < start.event.time);
    for (const second of before) {
      const first = before.find((put) => put.completedAt < second.invokedAt && put.value !== event.value);
      if (first === undefined || typeof first.value !== 'string') continue;
      const changed = [...events];
      changed[index] = { ...event, value: first.value };
      return changed;
    }
  }
  throw new Error('no read to make stale: the history has no put followed by a put and a read');
}
