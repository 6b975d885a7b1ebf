import { runCommandMain } from './command-main.js';
import { runFailoverCommand } from './failover-command.js';

await runCommandMain('bench:failover', runFailoverCommand);
