import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { checkHistory } from '@impulse/common';
import { checkHistoryCommand, parseHistory } from '../../src/linearizability/check-history-main.js';
import { formatHistoryCheck, historyCheckExitCodes } from '../../src/linearizability/format.js';

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
    // Many concurrent writes of two values (the general search decides it): more orders than a
    // budget of 10 steps covers.
    for (let client = 0; client < 12; client++) {
      events.push({ client, type: 'invoke', f: 'put', key: 'k', value: String(client % 2), time: client });
    }
    for (let client = 0; client < 12; client++) {
      events.push({ client, type: 'ok', f: 'put', key: 'k', time: 100 + client });
    }
    events.push({ client: 99, type: 'invoke', f: 'get', key: 'k', time: 50 });
    events.push({ client: 99, type: 'ok', f: 'get', key: 'k', value: '1', time: 150 });
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

describe('check:history exit statuses', () => {
  const directory = mkdtempSync(join(tmpdir(), 'check-history-'));
  afterAll(() => rmSync(directory, { recursive: true, force: true }));
  let files = 0;

  /** Runs the command on a file holding `text`; returns its exit status and what it wrote. */
  const run = (text: string, ...flags: string[]): { exitCode: number; stdout: string; stderr: string } => {
    const file = join(directory, `history-${files++}.jsonl`);
    writeFileSync(file, text);
    let stdout = '';
    let stderr = '';
    const exitCode = checkHistoryCommand([file, ...flags], {
      stdout: (chunk) => (stdout += chunk),
      stderr: (chunk) => (stderr += chunk),
    });
    return { exitCode, stdout, stderr };
  };

  it('are 0, 1, 2 and 3, and --help says so', () => {
    expect(historyCheckExitCodes).toEqual({ linearizable: 0, notLinearizable: 1, unknown: 2, badInput: 3 });
    let help = '';
    expect(checkHistoryCommand(['--help'], { stdout: (text) => (help += text), stderr: () => {} })).toBe(0);
    expect(help).toMatch(/0 {2}linearizable: true/);
    expect(help).toMatch(/1 {2}linearizable: false/);
    expect(help).toMatch(/2 {2}linearizable: unknown/);
    expect(help).toMatch(/3 {2}bad input/);
  });

  it('answers 0, 1 and 2 for true, false and unknown', () => {
    const put = { client: 1, type: 'invoke', f: 'put', key: 'x', value: '1', time: 1 };
    const putOk = { client: 1, type: 'ok', f: 'put', key: 'x', time: 2 };
    const get = { client: 2, type: 'invoke', f: 'get', key: 'x', time: 3 };
    expect(run(lines(put, putOk, get, { ...get, type: 'ok', value: '1', time: 4 })).exitCode).toBe(0);
    const stale = run(lines(put, putOk, get, { ...get, type: 'ok', value: null, time: 4 }));
    expect(stale.exitCode).toBe(1);
    expect(stale.stdout).toContain('#2 read null, but neither the initial absence nor any delete');
    const twoValues = [0, 1, 2, 3].map((client) => ({ ...put, client, value: String(client % 2), time: 1 }));
    const twoValuesOk = [0, 1, 2, 3].map((client) => ({ ...putOk, client, time: 2 }));
    const busy = run(
      lines(...twoValues, ...twoValuesOk, get, { ...get, type: 'ok', value: '1', time: 4 }),
      '--steps-per-key',
      '2',
    );
    expect(busy.exitCode).toBe(2);
  });

  it('reads a gzipped history (.gz), and answers 3 for a .gz file that is not gzip', () => {
    const put = { client: 1, type: 'invoke', f: 'put', key: 'x', value: '1', time: 1 };
    const history = lines(put, { ...put, type: 'ok', value: undefined, time: 2 });
    const file = join(directory, `history-${files++}.jsonl.gz`);
    writeFileSync(file, gzipSync(history));
    let stdout = '';
    expect(checkHistoryCommand([file], { stdout: (text) => (stdout += text), stderr: () => {} })).toBe(0);
    expect(stdout).toMatch(/^linearizable: true$/m);
    const notGzip = join(directory, `history-${files++}.jsonl.gz`);
    writeFileSync(notGzip, history);
    let stderr = '';
    expect(checkHistoryCommand([notGzip], { stdout: () => {}, stderr: (text) => (stderr += text) })).toBe(3);
    expect(stderr).toContain(notGzip);
  });

  it('answers 3, not true and not unknown, for an empty or blank history', () => {
    for (const text of ['', '\n', '  \n\t\n']) {
      const { exitCode, stdout, stderr } = run(text);
      expect(exitCode).toBe(3);
      expect(stdout).toBe('');
      expect(stderr).toMatch(/the history is empty/);
    }
  });

  it('answers 3 for a get ok without a value, and for a cas whose expected is not a string', () => {
    const getWithoutValue = run(
      lines(
        { client: 1, type: 'invoke', f: 'get', key: 'x', time: 1 },
        { client: 1, type: 'ok', f: 'get', key: 'x', time: 2 },
      ),
    );
    expect(getWithoutValue.exitCode).toBe(3);
    expect(getWithoutValue.stderr).toMatch(/a get that completed ok needs a value/);
    const casInvoke = { client: 1, type: 'invoke', f: 'cas', key: 'x', value: 'y', time: 1 };
    const casOk = { client: 1, type: 'ok', f: 'cas', key: 'x', time: 2 };
    const withoutExpected = run(lines(casInvoke, casOk));
    expect(withoutExpected.exitCode).toBe(3);
    expect(withoutExpected.stderr).toMatch(/cas needs expected/);
    const numberExpected = run(lines({ ...casInvoke, expected: 5 }, casOk));
    expect(numberExpected.exitCode).toBe(3);
    expect(numberExpected.stderr).toMatch(/line 1: not a history event/);
    // null expects the key absent: a valid cas, and this one is linearizable.
    expect(run(lines({ ...casInvoke, expected: null }, casOk)).exitCode).toBe(0);
  });

  it('answers 3 for bad arguments, an unreadable file and malformed lines', () => {
    const silent = { stdout: () => {}, stderr: () => {} };
    expect(checkHistoryCommand([], silent)).toBe(3);
    expect(checkHistoryCommand([join(directory, 'missing.jsonl')], silent)).toBe(3);
    expect(checkHistoryCommand(['--time-budget', 'soon', 'x'], silent)).toBe(3);
    expect(checkHistoryCommand(['a', 'b'], silent)).toBe(3);
    expect(run('not json').exitCode).toBe(3);
    expect(run(lines({ client: 1, type: 'ok', f: 'get', key: 'x', value: null, time: 1 })).exitCode).toBe(3);
  });
});
