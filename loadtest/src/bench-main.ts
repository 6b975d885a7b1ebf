import { runBenchCommand } from './bench-command.js';
import { runCommandMain } from './command-main.js';

await runCommandMain('bench', runBenchCommand);
