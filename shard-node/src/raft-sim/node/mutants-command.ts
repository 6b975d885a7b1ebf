/**
 * `npm run sim:mutants -- --node`: the node simulator's planted bugs (`mutants.ts`), each hunted
 * under its targeted schedule until a seed catches it, with the control run of that seed. The last
 * line is `sim:mutants --node: <caught>/<total> mutants caught within <bound> seeds, <seconds> s`;
 * the exit code is 1 unless every mutant was caught by an expected check and its control passed.
 *
 *   npm run sim:mutants -- --node [--mutant <name>] [--seeds <bound>] [--rates <seeds>]
 *   npm run sim:mutants -- --node --mutant <name> --replay <seed>
 *
 * `--rates N` runs seeds 1 to N with and without each mutant: how many catch it by an expected
 * check, and how many fail without it (which must be none): the measure behind the bound.
 * `--replay S` runs seed S of one mutant with its trace, then without the mutant, and prints the
 * problems of both.
 */
import { performance } from 'node:perf_hooks';

import {
  huntNodeMutant,
  nodeHuntFailure,
  nodeMutantFirstSeed,
  nodeMutantSeedsMax,
  nodeMutantSpecs,
  problemKind,
  runNodeMutantSeed,
  type NodeMutantSpec,
} from './mutants.js';

export interface NodeMutantsCommand {
  readonly mutant?: string | undefined;
  /** The bound of the hunt (default `nodeMutantSeedsMax`). */
  readonly seedsMax?: number | undefined;
  /** Measure the catch rate over this many seeds instead of hunting. */
  readonly rates?: number | undefined;
  /** Replay this seed of `mutant`, with its trace. */
  readonly replay?: number | undefined;
}

/** The bound on the characters of a problem printed (a history can be long). */
const problemCharsMax = 300;

function abbreviate(text: string): string {
  const line = text.split('\n')[0] ?? '';
  return line.length <= problemCharsMax ? line : `${line.slice(0, problemCharsMax)}…`;
}

function replayHint(spec: NodeMutantSpec, seed: number): string {
  return `npm run sim:mutants -- --node --mutant ${spec.mutant} --replay ${seed}`;
}

/** Runs the command; resolves with the process's exit code. */
export async function runNodeMutantsCommand(command: NodeMutantsCommand): Promise<number> {
  const specs = nodeMutantSpecs.filter(
    (spec) => command.mutant === undefined || spec.mutant === command.mutant,
  );
  if (specs.length === 0)
    throw new Error(`--mutant must be one of ${nodeMutantSpecs.map((spec) => spec.mutant).join(', ')}`);
  const startMs = performance.now();

  if (command.replay !== undefined) {
    if (specs.length !== 1) throw new Error('--replay needs --mutant');
    const spec = specs[0] as NodeMutantSpec;
    for (const planted of [true, false]) {
      console.log(`${planted ? 'with' : 'without'} ${spec.mutant}, seed ${command.replay}:`);
      const run = await runNodeMutantSeed(spec, command.replay, planted, (line) => console.log(`  ${line}`));
      console.log(
        `  ${run.problems.length} problems, ${run.operations.ok} operations, faults ${JSON.stringify(run.faults)}`,
      );
      for (const problem of run.problems.slice(0, 5))
        console.log(`  ${problemKind(problem)}: ${abbreviate(problem)}`);
    }
    return 0;
  }

  if (command.rates !== undefined) {
    let failed = false;
    for (const spec of specs) {
      let caught = 0;
      let controlsFailed = 0;
      const specStartMs = performance.now();
      for (let seed = nodeMutantFirstSeed; seed < nodeMutantFirstSeed + command.rates; seed += 1) {
        const run = await runNodeMutantSeed(spec, seed, true);
        const first = run.problems[0];
        if (first !== undefined && spec.caughtBy.includes(problemKind(first))) caught += 1;
        const control = await runNodeMutantSeed(spec, seed, false);
        if (control.problems.length > 0) {
          controlsFailed += 1;
          console.log(`  control seed ${seed} failed: ${abbreviate(control.problems[0] as string)}`);
        }
      }
      const seconds = (performance.now() - specStartMs) / 1000;
      console.log(
        `node mutant ${spec.mutant} (${spec.simulation.schedule}): caught on ${caught} of ${command.rates} seeds ` +
          `(${Math.round((caught / command.rates) * 100)}%), ${controlsFailed} failing without it, ${seconds.toFixed(1)} s`,
      );
      if (controlsFailed > 0) failed = true;
    }
    console.log(
      `sim:mutants --node: rates over ${command.rates} seeds, ${((performance.now() - startMs) / 1000).toFixed(1)} s`,
    );
    return failed ? 1 : 0;
  }

  const seedsMax = command.seedsMax ?? nodeMutantSeedsMax;
  let caughtCount = 0;
  for (const spec of specs) {
    const hunt = await huntNodeMutant(spec, seedsMax);
    const failure = nodeHuntFailure(spec, hunt);
    if (hunt.caught !== undefined) {
      const { seed, problem, kind } = hunt.caught;
      console.log(
        `node mutant ${spec.mutant}: caught at seed ${seed} (${hunt.seedsRun} seeds, ${Math.round(hunt.elapsedMs)} ms) ` +
          `by ${kind} under ${spec.simulation.schedule}: ${abbreviate(problem)}`,
      );
      console.log(`  breaks: ${spec.breaks}`);
      console.log(`  control: seed ${seed} without the mutant: ${hunt.controlProblems.length} problems`);
      console.log(`  replay: ${replayHint(spec, seed)}`);
    }
    if (failure === undefined) caughtCount += 1;
    else console.log(`FAIL node mutant ${spec.mutant}: ${failure}`);
  }
  console.log(
    `sim:mutants --node: ${caughtCount}/${specs.length} mutants caught within ${seedsMax} seeds, ${((performance.now() - startMs) / 1000).toFixed(1)} s`,
  );
  return caughtCount === specs.length ? 0 : 1;
}
