import { runCommandMain } from '../command-main.js';
import { runChaosCommand } from './chaos-command.js';

await runCommandMain('chaos', runChaosCommand);
