import { randomInt } from 'node:crypto';
import { ConfigError, parseConfig } from '@impulse/common';
import { chaosOptions, chaosProgram } from './chaos-options.js';
import { chaosSchedule, runChaos } from './chaos-run.js';
import { nemesisNames, type NemesisName } from './nemesis.js';

/** Parses `--nemesis kill,pause,...` (or `all`, or `none`). */
export function parseNemeses(text: string): Set<NemesisName> {
  const names = text
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  if (names.length === 1 && names[0] === 'all') return new Set(nemesisNames);
  if (names.length === 1 && names[0] === 'none') return new Set();
  const unknown = names.filter((name) => !(nemesisNames as readonly string[]).includes(name));
  if (unknown.length > 0 || names.length === 0) {
    throw new ConfigError([
      `--nemesis: unknown nemesis ${unknown.join(', ') || '(empty)'}; choose from ${nemesisNames.join(', ')}, all or none`,
    ]);
  }
  return new Set(names as NemesisName[]);
}

/**
 * `npm run chaos`: prints progress on stderr and the verdict line last on stdout. Exit status 0
 * when the run passed (linearizable, no acknowledged write lost, no unexpected exit, no error),
 * 2 when the checker could not decide within its budget and nothing else failed, 1 otherwise.
 * `--dry-run` prints the fault schedule of the seed and starts nothing.
 */
export async function runChaosCommand(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Promise<number> {
  const config = parseConfig(chaosProgram, chaosOptions, { argv, env });
  const nemeses = parseNemeses(config.nemesis);
  const seed = config.seed === 0 ? randomInt(1, 2 ** 31) : config.seed;
  if (config.dryRun) {
    const schedule = chaosSchedule({ seed, timeSeconds: config.time, nemeses, groups: config.groups });
    const lines = [
      ...schedule.faults.map((fault) => JSON.stringify(fault)),
      ...schedule.replacements.map((replacement) => JSON.stringify({ nemesis: 'member', ...replacement })),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    process.stderr.write(
      `chaos: seed ${seed}: ${schedule.faults.length} faults, ${schedule.replacements.length} replacements\n`,
    );
    return 0;
  }
  const result = await runChaos({
    timeSeconds: config.time,
    nemeses,
    seed,
    clients: config.clients,
    keysActive: config.keys,
    operationsPerKeyMax: config.operationsPerKey,
    requestTimeoutMs: config.requestTimeout,
    groups: config.groups,
    replicasPerGroup: config.replicasPerGroup,
    readMode: config.readMode as 'readindex' | 'lease',
    resultsRoot: config.results,
    checkTimeBudgetMs: config.checkTimeBudget,
    keepData: config.keepData,
    serving: {
      windowSeconds: config.servingWindow,
      graceSeconds: config.servingGrace,
      operationsMin: config.servingOperationsMin,
    },
    log: (line) => process.stderr.write(`${line}\n`),
    commandLine: `npm run chaos -- ${argv.join(' ')}${config.seed === 0 ? ` (seed ${seed} picked)` : ''}`,
  });
  process.stdout.write(`${result.finalLine}\n`);
  if (result.passed) return 0;
  const onlyUndecided =
    result.linearizable === 'unknown' &&
    result.lostWrites.length === 0 &&
    result.unexpectedExits.length === 0 &&
    result.errors.length === 0;
  return onlyUndecided ? 2 : 1;
}
