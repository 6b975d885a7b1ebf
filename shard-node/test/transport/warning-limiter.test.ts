import type { Logger } from '@impulse/common';
import { describe, expect, it } from 'vitest';
import { WarningLimiter } from '../../src/transport/warning-limiter.js';

function recordingLogger(): { logger: Logger; lines: Array<[string, Record<string, unknown>, string]> } {
  const lines: Array<[string, Record<string, unknown>, string]> = [];
  const at =
    (level: string) =>
    (fields: Record<string, unknown>, message: string): void => {
      lines.push([level, fields, message]);
    };
  return { logger: { warn: at('warn'), info: at('info') } as unknown as Logger, lines };
}

describe('WarningLimiter', () => {
  it('logs the first of a kind, counts the rest within the interval, and reports the count', () => {
    const { logger, lines } = recordingLogger();
    let now = 0;
    const limiter = new WarningLimiter(logger, 1_000, () => now);
    limiter.warn('a', { n: 1 }, 'first');
    limiter.warn('a', { n: 2 }, 'hidden');
    limiter.warn('b', { n: 3 }, 'other kind');
    now = 1_000;
    limiter.warn('a', { n: 4 }, 'again');
    expect(lines).toEqual([
      ['warn', { n: 1 }, 'first'],
      ['warn', { n: 3 }, 'other kind'],
      ['warn', { n: 4, suppressed: 1 }, 'again'],
    ]);
  });

  it('logs a routine kind at info', () => {
    const { logger, lines } = recordingLogger();
    const limiter = new WarningLimiter(logger, 1_000, () => 0);
    limiter.warn('inboundRefused:unknownPeer', { reason: 'unknownPeer' }, 'refused', 'info');
    expect(lines).toEqual([['info', { reason: 'unknownPeer' }, 'refused']]);
  });
});
