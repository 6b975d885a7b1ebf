import { runCommandMain } from './command-main.js';
import { runSeedBenchCommand } from './seed-bench-command.js';

await runCommandMain('bench:seed', runSeedBenchCommand);
