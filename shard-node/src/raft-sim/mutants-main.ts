/**
 * `npm run sim:mutants`: runs every planted bug (`mutants.ts`) over seeds until the simulator
 * catches it, and prints, per mutant, the seed that caught it, the invariant it broke and the
 * time it took; then checks the same seed without the mutant runs clean. The last line is
 * `sim:mutants: <caught>/<total> mutants caught within <bound> seeds, <seconds> s`; the exit code
 * is 1 unless every mutant was caught.
 *
 *   npm run sim:mutants [-- --mutant <name>] [--seeds <bound>] [--rates <seeds>]
 *
 * `--rates N` runs every seed from 1 to N instead, with and without the mutant, and prints how
 * many of them catch each mutant by an expected invariant, and how many fail without it (which
 * must be none): the measure behind the bound in docs/raft.md.
 *
 * `--node` runs the node simulator's planted bugs instead, each under its targeted schedule
 * (`node/mutants.ts`, `node/mutants-command.ts`; `--replay <seed>` replays one with its trace).
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';

import { findHistoryChecker } from './history-checker.js';
import { huntFailure, huntMutant, mutantFirstSeed, mutantSeedsMax, mutantSpecs } from './mutants.js';
import { runNodeMutantsCommand } from './node/mutants-command.js';
import { runSimulation } from './simulation.js';

function positiveInteger(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  return value;
}

/** The bound on the characters of a violation's detail printed (a history can be long). */
const detailCharsMax = 240;

function abbreviate(text: string): string {
  return text.length <= detailCharsMax ? text : `${text.slice(0, detailCharsMax)}…`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      mutant: { type: 'string' },
      seeds: { type: 'string' },
      rates: { type: 'string' },
      node: { type: 'boolean', default: false },
      replay: { type: 'string' },
    },
    strict: true,
  });
  if (values.node) {
    return runNodeMutantsCommand({
      mutant: values.mutant,
      // The node simulator's bound is its own (`nodeMutantSeedsMax`) unless one is given.
      seedsMax: values.seeds === undefined ? undefined : positiveInteger('seeds', values.seeds),
      rates: values.rates === undefined ? undefined : positiveInteger('rates', values.rates),
      replay: values.replay === undefined ? undefined : positiveInteger('replay', values.replay),
    });
  }
  if (values.replay !== undefined) throw new Error('--replay is for the node simulator (--node)');
  const specs = mutantSpecs.filter((spec) => values.mutant === undefined || spec.mutant === values.mutant);
  if (specs.length === 0) {
    throw new Error(`--mutant must be one of ${mutantSpecs.map((spec) => spec.mutant).join(', ')}`);
  }
  const checkHistory = await findHistoryChecker();
  const startMs = performance.now();

  if (values.rates !== undefined) {
    const seeds = positiveInteger('rates', values.rates);
    let failed = false;
    for (const spec of specs) {
      let caught = 0;
      let controlsFailed = 0;
      const specStartMs = performance.now();
      for (let seed = mutantFirstSeed; seed < mutantFirstSeed + seeds; seed += 1) {
        const run = runSimulation({ ...spec.simulation, seed, checkHistory, mutant: spec.mutant });
        const first = run.violations[0];
        if (first !== undefined && spec.caughtBy.includes(first.invariant)) caught += 1;
        if (runSimulation({ ...spec.simulation, seed, checkHistory }).violations.length > 0)
          controlsFailed += 1;
      }
      const seconds = (performance.now() - specStartMs) / 1000;
      console.log(
        `mutant ${spec.mutant}: caught on ${caught} of ${seeds} seeds (${Math.round((caught / seeds) * 100)}%), ` +
          `${controlsFailed} failing without it, ${seconds.toFixed(1)} s`,
      );
      if (controlsFailed > 0) failed = true;
    }
    console.log(
      `sim:mutants: rates over ${seeds} seeds, ${((performance.now() - startMs) / 1000).toFixed(1)} s`,
    );
    return failed ? 1 : 0;
  }

  const seedsMax = positiveInteger('seeds', values.seeds ?? String(mutantSeedsMax));
  let caughtCount = 0;
  for (const spec of specs) {
    const hunt = huntMutant(spec, checkHistory, seedsMax);
    const failure = huntFailure(spec, hunt);
    if (hunt.caught !== undefined) {
      const { seed, violation } = hunt.caught;
      console.log(
        `mutant ${spec.mutant}: caught at seed ${seed} (${hunt.seedsRun} seeds, ${Math.round(hunt.elapsedMs)} ms) ` +
          `by ${violation.invariant} at tick ${violation.tick}: ${abbreviate(violation.detail.split('\n')[0]!)}`,
      );
      console.log(`  breaks: ${spec.breaks}`);
      console.log(`  control: seed ${seed} without the mutant: ${hunt.controlViolations.length} violations`);
    }
    if (failure === undefined) {
      caughtCount += 1;
    } else {
      console.log(`FAIL mutant ${spec.mutant}: ${failure}`);
    }
  }
  const seconds = (performance.now() - startMs) / 1000;
  console.log(
    `sim:mutants: ${caughtCount}/${specs.length} mutants caught within ${seedsMax} seeds, ${seconds.toFixed(1)} s`,
  );
  return caughtCount === specs.length ? 0 : 1;
}

process.exitCode = await main();
