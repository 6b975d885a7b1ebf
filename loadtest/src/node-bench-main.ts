import { runCommandMain } from './command-main.js';
import { runNodeBenchCommand } from './node-bench-command.js';

await runCommandMain('bench:nodes', runNodeBenchCommand);
