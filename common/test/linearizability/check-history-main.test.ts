import { describe, expect, it } from 'vitest';
import { checkHistory } from '@impulse/common';
import { parseHistory } from '../../src/linearizability/check-history-main.js';
import { formatHistoryCheck } from '../../src/linearizability/format.js';

const lines = (...events: object[]): string => events.map((event) => JSON.stringify(event)).join('\n');

describe('check:history', () => {
  it('answers true with exit 0 for a linearizable history', () => {
    const history = parseHistory(
      lines(
        { client: 1, type: 'invoke', f: 'put', key: 'x', value: '1', time: 1 },
        { client: 1, type: 'ok', f: 'put', key: 'x', time: 2 },
        { client: 2, type: 'invoke', f: 'get', key: 'x', time: 3 },
        { client: 2, type: 'ok', f: 'get', key: 'x', value: '1', time: 4 },
      ),
    );
    const { text, exitCode } = formatHistoryCheck(checkHistory(history));
    expect(text.split('\n').at(-1)).toBe('linearizable: true');
    expect(exitCode).toBe(0);
  });

  it('answers false with exit 1 and names the key and the operations that cannot be ordered', () => {
    const history = parseHistory(
      lines(
        { client: 1, type: 'invoke', f: 'put', key: 'x', value: '1', time: 1 },
        { client: 1, type: 'ok', f: 'put', key: 'x', time: 2 },
        { client: 2, type: 'invoke', f: 'get', key: 'x', time: 3 },
        { client: 2, type: 'ok', f: 'get', key: 'x', value: 'never written', time: 4 },
      ),
    );
    const { text, exitCode } = formatHistoryCheck(checkHistory(history));
    expect(text).toContain('key "x": these operations cannot be ordered');
    expect(text).toContain('get -> "never written"');
    expect(text.split('\n').at(-1)).toBe('linearizable: false');
    expect(exitCode).toBe(1);
  });

  it('answers unknown with exit 2 when the search budget runs out, never true', () => {
    const events: ({ time: number } & Record<string, unknown>)[] = [];
    // Many concurrent writes and reads of one key: more orders than a budget of 10 steps covers.
    for (let client = 0; client < 12; client++) {
      events.push({ client, type: 'invoke', f: 'put', key: 'k', value: String(client), time: client });
    }
    for (let client = 0; client < 12; client++) {
      events.push({ client, type: 'ok', f: 'put', key: 'k', time: 100 + client });
    }
    events.push({ client: 99, type: 'invoke', f: 'get', key: 'k', time: 50 });
    events.push({ client: 99, type: 'ok', f: 'get', key: 'k', value: '7', time: 150 });
    events.sort((a, b) => a.time - b.time);
    const { text, exitCode } = formatHistoryCheck(
      checkHistory(parseHistory(lines(...events)), { stepsPerKeyMax: 10 }),
    );
    expect(text.split('\n').at(-1)).toBe('linearizable: unknown');
    expect(exitCode).toBe(2);
  });

  it('refuses lines that are not history events, naming the line', () => {
    expect(() => parseHistory('{"client":1}')).toThrow(/line 1: not a history event/);
    expect(() => parseHistory('\n\nnot json')).toThrow(/line 3: not JSON/);
  });
});
