import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ImpulseError, ServerErrorLog } from '@impulse/common';

/** A pino logger whose lines land in `lines`, parsed. */
function capturingLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines };
}

describe('ServerErrorLog', () => {
  it('logs every code the server is to blame for once per interval, with the count it held back', () => {
    const { logger, lines } = capturingLogger();
    let nowMs = 0;
    const log = new ServerErrorLog(logger, 10_000, () => nowMs);
    const storage = new ImpulseError('STORAGE_ERROR', 'the storage engine failed the operation', {
      cause: new Error('Corruption: block checksum mismatch'),
    });
    for (let request = 0; request < 5; request++) log.report(storage, { url: `/kv/${request}` });
    log.report(new ImpulseError('COMMIT_TIMEOUT', 'the write did not apply'), { url: '/kv/t' });
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ level: 50, code: 'STORAGE_ERROR', status: 503, url: '/kv/0' });
    expect(JSON.stringify(lines[0]?.['err'])).toContain('block checksum mismatch');
    expect(lines[1]).toMatchObject({ level: 40, code: 'COMMIT_TIMEOUT' });
    nowMs = 9_999;
    log.report(storage, { url: '/kv/held' });
    expect(lines).toHaveLength(2);
    nowMs = 10_000;
    log.report(storage, { url: '/kv/again' });
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatchObject({ code: 'STORAGE_ERROR', url: '/kv/again', suppressed: 5 });
  });

  it("logs nothing for the client's own errors", () => {
    const { logger, lines } = capturingLogger();
    const log = new ServerErrorLog(logger);
    for (const code of [
      'INVALID_KEY',
      'NOT_FOUND',
      'VALUE_TOO_LARGE',
      'NOT_LEADER',
      'TOO_MANY_REQUESTS',
    ] as const) {
      log.report(new ImpulseError(code, 'client error'), {});
    }
    expect(lines).toHaveLength(0);
    log.report(new ImpulseError('INTERNAL', 'internal error', { cause: new TypeError('boom') }), {});
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 50, code: 'INTERNAL' });
  });
});
