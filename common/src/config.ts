/**
 * Typed configuration from command-line flags and environment variables, parsed and validated
 * once at start-up, then frozen and passed down.
 *
 * Each service declares its options with `option.*` builders. Every option has a flag
 * (`--value-bytes-max`), an environment variable (`IMPULSE_VALUE_BYTES_MAX`), a unit and a
 * default; a flag wins over the environment. `--help` lists them all.
 */

import { StartupError } from './startup-error.js';

export type OptionKind = 'string' | 'integer' | 'bytes' | 'milliseconds' | 'boolean' | 'enum';

interface OptionSpecBase<T> {
  readonly kind: OptionKind;
  readonly description: string;
  /** Absent means the option is required. */
  readonly default?: T;
  /** Overrides the flag derived from the field name. */
  readonly flag?: string;
  /** Overrides the environment variable derived from the field name. */
  readonly env?: string;
  /**
   * A check beyond the kind and the range: answers the problem with the value (`must be odd
   * (...)`), or undefined to accept it. The answer should say why, as the description should.
   */
  check?(value: T): string | undefined;
}

export interface StringOption extends OptionSpecBase<string> {
  readonly kind: 'string';
}
export interface NumberOption extends OptionSpecBase<number> {
  readonly kind: 'integer' | 'bytes' | 'milliseconds';
  readonly min?: number;
  readonly max?: number;
}
export interface BooleanOption extends OptionSpecBase<boolean> {
  readonly kind: 'boolean';
}
export interface EnumOption<T extends string> extends OptionSpecBase<T> {
  readonly kind: 'enum';
  readonly choices: readonly T[];
}

export type OptionSpec = StringOption | NumberOption | BooleanOption | EnumOption<string>;

type ValueOf<S> =
  S extends EnumOption<infer T>
    ? T
    : S extends NumberOption
      ? number
      : S extends BooleanOption
        ? boolean
        : string;

export type ConfigOf<Specs extends Record<string, OptionSpec>> = {
  readonly [K in keyof Specs]: ValueOf<Specs[K]>;
};

/**
 * The longest delay Node's timers take: `setTimeout` runs a callback given more than 2^31 - 1 ms
 * after 1 ms instead, so a duration over it would turn every timeout into an immediate one.
 */
export const timerMillisecondsMax = 2 ** 31 - 1;

/**
 * The maximum of a duration option that names none: an hour. No timeout, deadline or interval of
 * Impulse has a use for more, and a larger value is far likelier a typo (`600h` for `600ms`) than
 * a wish. An option that needs longer says so with its own `max`, never over the timer limit.
 */
export const durationMillisecondsMaxDefault = 3_600_000;

function durationOption(spec: Omit<NumberOption, 'kind'>): NumberOption {
  const max = spec.max ?? durationMillisecondsMaxDefault;
  if (max > timerMillisecondsMax) {
    throw new Error(
      `a duration option cannot allow more than ${timerMillisecondsMax} ms (Node's timer limit)`,
    );
  }
  return { ...spec, max, kind: 'milliseconds' };
}

export const option = {
  string: (spec: Omit<StringOption, 'kind'>): StringOption => ({ ...spec, kind: 'string' }),
  integer: (spec: Omit<NumberOption, 'kind'>): NumberOption => ({ ...spec, kind: 'integer' }),
  bytes: (spec: Omit<NumberOption, 'kind'>): NumberOption => ({ ...spec, kind: 'bytes' }),
  /** A duration in ms; at most `durationMillisecondsMaxDefault` unless `max` says otherwise. */
  milliseconds: durationOption,
  boolean: (spec: Omit<BooleanOption, 'kind'>): BooleanOption => ({ ...spec, kind: 'boolean' }),
  enum: <T extends string>(spec: Omit<EnumOption<T>, 'kind'>): EnumOption<T> => ({ ...spec, kind: 'enum' }),
};

/**
 * Invalid configuration: every problem found, so that an operator fixes them in one go. The first
 * problem is on the first line of the message, so that a launcher relaying one line relays it.
 */
export class ConfigError extends StartupError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('CONFIG_INVALID', `invalid configuration: ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Thrown by `parseConfig` when `--help` is given; `text` is what to print. */
export class HelpRequested extends Error {
  readonly text: string;
  constructor(text: string) {
    super('help requested');
    this.name = 'HelpRequested';
    this.text = text;
  }
}

const kebab = (name: string): string => name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
const flagOf = (name: string, spec: OptionSpec): string => spec.flag ?? `--${kebab(name)}`;
const envOf = (name: string, spec: OptionSpec): string =>
  spec.env ?? `IMPULSE_${kebab(name).replace(/-/g, '_').toUpperCase()}`;

const byteUnits: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};
const durationUnits: Record<string, number> = { '': 1, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses `1048576`, `512KiB`, `1MiB`, `2MB` into bytes. */
export function parseBytes(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = byteUnits[(match?.[2] ?? '').toLowerCase()];
  if (match === null || unit === undefined) return undefined;
  const value = Number(match[1]) * unit;
  return Number.isSafeInteger(value) ? value : undefined;
}

/** Parses `250`, `250ms`, `2s`, `1m` into milliseconds. */
export function parseMilliseconds(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/.exec(text);
  const unit = durationUnits[match?.[2] ?? ''];
  if (match === null || unit === undefined) return undefined;
  const value = Number(match[1]) * unit;
  return Number.isSafeInteger(value) ? value : undefined;
}

function convert(spec: OptionSpec, text: string): { value: unknown } | { problem: string } {
  switch (spec.kind) {
    case 'string':
      return checked(spec.check, text);
    case 'boolean': {
      const lower = text.toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(lower)) return checked(spec.check, true);
      if (['false', '0', 'no', 'off'].includes(lower)) return checked(spec.check, false);
      return { problem: 'must be true or false' };
    }
    case 'enum':
      return spec.choices.includes(text)
        ? checked(spec.check, text)
        : { problem: `must be one of ${spec.choices.join(', ')}` };
    case 'integer':
    case 'bytes':
    case 'milliseconds': {
      const value =
        spec.kind === 'bytes'
          ? parseBytes(text)
          : spec.kind === 'milliseconds'
            ? parseMilliseconds(text)
            : /^\s*-?\d+\s*$/.test(text)
              ? Number(text)
              : undefined;
      if (value === undefined || !Number.isSafeInteger(value)) {
        const hint =
          spec.kind === 'bytes'
            ? ' (e.g. 1048576, 512KiB, 1MiB)'
            : spec.kind === 'milliseconds'
              ? ' (e.g. 500, 500ms, 2s)'
              : '';
        return { problem: `must be a whole number${hint}` };
      }
      if (spec.min !== undefined && value < spec.min) return { problem: `must be at least ${spec.min}` };
      if (spec.max !== undefined && value > spec.max) {
        return { problem: `must be at most ${spec.max}${spec.kind === 'milliseconds' ? ' ms' : ''}` };
      }
      return checked(spec.check, value);
    }
  }
}

function checked<T>(
  check: ((value: T) => string | undefined) | undefined,
  value: T,
): { value: unknown } | { problem: string } {
  const problem = check?.(value);
  return problem === undefined ? { value } : { problem };
}

export interface ParseConfigInput {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
}

/**
 * Parses and validates the configuration. Throws `HelpRequested` for `--help`, and `ConfigError`
 * listing every problem (unknown flags, missing values, values out of range).
 */
export function parseConfig<Specs extends Record<string, OptionSpec>>(
  program: { readonly name: string; readonly summary: string },
  specs: Specs,
  input: ParseConfigInput,
): ConfigOf<Specs> {
  const byFlag = new Map<string, string>();
  for (const name of Object.keys(specs)) byFlag.set(flagOf(name, specs[name] as OptionSpec), name);

  const problems: string[] = [];
  const fromFlags = new Map<string, string>();
  const argv = input.argv;
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index] as string;
    if (argument === '--help' || argument === '-h') throw new HelpRequested(renderHelp(program, specs));
    if (!argument.startsWith('--')) {
      problems.push(`unexpected argument ${JSON.stringify(argument)}`);
      continue;
    }
    const equalsAt = argument.indexOf('=');
    const flag = equalsAt === -1 ? argument : argument.slice(0, equalsAt);
    const name = byFlag.get(flag);
    if (name === undefined) {
      problems.push(`unknown option ${flag} (see --help)`);
      continue;
    }
    let text: string | undefined;
    if (equalsAt !== -1) {
      text = argument.slice(equalsAt + 1);
    } else if (
      (specs[name] as OptionSpec).kind === 'boolean' &&
      !/^(true|false|1|0|yes|no|on|off)$/i.test(argv[index + 1] ?? '')
    ) {
      text = 'true';
    } else {
      text = argv[index + 1];
      index++;
      if (text === undefined) {
        problems.push(`${flag} needs a value`);
        continue;
      }
    }
    fromFlags.set(name, text);
  }

  const config: Record<string, unknown> = {};
  for (const name of Object.keys(specs)) {
    const spec = specs[name] as OptionSpec;
    const flag = flagOf(name, spec);
    const env = envOf(name, spec);
    const text = fromFlags.get(name) ?? input.env[env];
    if (text === undefined) {
      if (spec.default === undefined) problems.push(`${flag} (or ${env}) is required`);
      else config[name] = spec.default;
      continue;
    }
    const result = convert(spec, text);
    if ('problem' in result) {
      const source = fromFlags.has(name) ? flag : env;
      problems.push(`${source}: ${result.problem} (got ${JSON.stringify(text)})`);
    } else {
      config[name] = result.value;
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const frozen = Object.freeze(config) as ConfigOf<Specs>;
  givenOptions.set(
    frozen,
    new Set(
      Object.keys(specs).filter(
        (name) => fromFlags.has(name) || input.env[envOf(name, specs[name] as OptionSpec)] !== undefined,
      ),
    ),
  );
  return frozen;
}

/** For each parsed configuration, the options its flags or environment set (the others took their default). */
const givenOptions = new WeakMap<object, ReadonlySet<string>>();

/**
 * The names of the options that a flag or an environment variable set in `config` (as returned by
 * `parseConfig`); the others took their default. Lets a setting that lives elsewhere (the cluster
 * configuration) refuse a per-process flag that disagrees with it, without refusing the default.
 */
export function optionsGiven(config: object): ReadonlySet<string> {
  return givenOptions.get(config) ?? new Set();
}

function formatDefault(spec: OptionSpec): string {
  if (spec.default === undefined) return 'required';
  if (spec.kind === 'bytes' && typeof spec.default === 'number') {
    const value = spec.default;
    if (value >= 1024 ** 2 && value % 1024 ** 2 === 0) return `${value / 1024 ** 2}MiB`;
    if (value >= 1024 && value % 1024 === 0) return `${value / 1024}KiB`;
  }
  if (spec.kind === 'string' && spec.default === '') return '""';
  return String(spec.default);
}

/** `, from 1 to 3600000` for a number with bounds, so that the help says what validation takes. */
function formatRange(spec: OptionSpec): string {
  if (spec.kind !== 'integer' && spec.kind !== 'bytes' && spec.kind !== 'milliseconds') return '';
  if (spec.min === undefined && spec.max === undefined) return '';
  if (spec.max === undefined) return `, at least ${spec.min}`;
  return spec.min === undefined ? `, at most ${spec.max}` : `, from ${spec.min} to ${spec.max}`;
}

const unitOf = (spec: OptionSpec): string =>
  ({
    string: 'string',
    integer: 'integer',
    bytes: 'bytes',
    milliseconds: 'ms',
    boolean: 'boolean',
    enum: spec.kind === 'enum' ? spec.choices.join('|') : '',
  })[spec.kind];

/** `--help`: every option with its flag, environment variable, unit, default and meaning. */
export function renderHelp(
  program: { readonly name: string; readonly summary: string },
  specs: Record<string, OptionSpec>,
): string {
  const lines = [
    `${program.name}: ${program.summary}`,
    '',
    `usage: ${program.name} [options]`,
    '',
    'options:',
  ];
  for (const name of Object.keys(specs)) {
    const spec = specs[name] as OptionSpec;
    lines.push(
      `  ${flagOf(name, spec)} <${unitOf(spec)}>   env ${envOf(name, spec)}, default ${formatDefault(spec)}${formatRange(spec)}`,
    );
    lines.push(`      ${spec.description}`);
  }
  lines.push(
    '',
    'A flag wins over its environment variable. Sizes take B, KiB, MiB, GiB; durations ms, s, m, h.',
  );
  lines.push('  --help   print this help and exit');
  return lines.join('\n');
}

/** Describes the options as a Markdown table, for the README (kept true by a test). */
export function renderMarkdownTable(specs: Record<string, OptionSpec>): string {
  const lines = ['| flag | environment | unit | default | meaning |', '| --- | --- | --- | --- | --- |'];
  for (const name of Object.keys(specs)) {
    const spec = specs[name] as OptionSpec;
    lines.push(
      `| \`${flagOf(name, spec)}\` | \`${envOf(name, spec)}\` | ${unitOf(spec).replace(/\|/g, ', ')} | ${formatDefault(spec)} | ${spec.description} |`,
    );
  }
  return lines.join('\n');
}
