import { ConfigError } from '@impulse/common';

/**
 * Parses a duration where a bare number means seconds: "10", "10s", "500ms", "2m". Zero is refused
 * unless `zero` is "allowed" (for a phase that may be skipped).
 */
export function parseDurationSeconds(
  flag: string,
  text: string,
  zero: 'refused' | 'allowed' = 'refused',
): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(text);
  if (match === null) {
    throw new ConfigError([
      `${flag}: must be a duration in seconds (e.g. 10, 10s, 500ms, 2m) (got ${JSON.stringify(text)})`,
    ]);
  }
  const value = Number(match[1]);
  const unit = match[2] ?? 's';
  const seconds = unit === 'ms' ? value / 1000 : unit === 'm' ? value * 60 : value;
  if (zero === 'allowed' && seconds === 0) return 0;
  if (!(seconds > 0)) throw new ConfigError([`${flag}: must be above 0 (got ${JSON.stringify(text)})`]);
  return seconds;
}
