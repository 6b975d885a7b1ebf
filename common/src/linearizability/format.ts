import type { HistoryCheck } from './check-history.js';
import type { Operation } from './history.js';

function describe(operation: Operation): string {
  const outcome = operation.status === 'info' ? 'unknown outcome' : 'ok';
  const value =
    operation.f === 'get'
      ? ` -> ${JSON.stringify(operation.output)}`
      : operation.f === 'delete'
        ? ''
        : ` ${JSON.stringify(operation.input)}`;
  const end = Number.isFinite(operation.returnTime) ? operation.returnTime : '∞';
  return `  #${operation.id} client ${operation.client} ${operation.f}${value} [${operation.invokeTime}, ${end}] (${outcome})`;
}

/**
 * Exit statuses of `npm run check:history`. `unknown` is never success, and bad input (an
 * unreadable or empty file, a malformed event, a bad argument) has its own status so that a script
 * cannot mistake "nothing was checked" for "the search ran out of budget".
 */
export const historyCheckExitCodes = Object.freeze({
  linearizable: 0,
  notLinearizable: 1,
  unknown: 2,
  badInput: 3,
});

/**
 * The verdict of a check as text: the history's size, how its keys were decided, the
 * counterexample (the key, the rule broken when known, and the operations that cannot be ordered)
 * or the undecided keys, and `linearizable: true|false|unknown` last; with the exit status that
 * goes with it (`historyCheckExitCodes`).
 */
export function formatHistoryCheck(check: HistoryCheck): { text: string; exitCode: number } {
  const lines: string[] = [];
  const keys = check.perKey.size;
  const perKey = [...check.perKey.values()];
  const operations = perKey.reduce((sum, key) => sum + key.operationCount, 0);
  const byReadsFrom = perKey.filter((key) => key.method === 'reads-from').length;
  lines.push(
    `history: ${keys} keys, ${operations} operations; ` +
      `${byReadsFrom} keys decided by reads-from, ${keys - byReadsFrom} by search`,
  );
  if (check.result === 'not-linearizable' && check.counterexample !== undefined) {
    lines.push(`key ${JSON.stringify(check.counterexample.key)}: these operations cannot be ordered:`);
    if (check.counterexample.reason !== undefined) lines.push(`  ${check.counterexample.reason}`);
    for (const operation of check.counterexample.operations) lines.push(describe(operation));
  }
  if (check.result === 'unknown') {
    const undecided = [...check.perKey].filter(([, key]) => key.result === 'unknown').map(([key]) => key);
    lines.push(
      `the search ran out of budget on ${undecided.length} key(s): ${undecided.slice(0, 10).join(', ')}`,
    );
  }
  const verdict =
    check.result === 'linearizable' ? 'true' : check.result === 'not-linearizable' ? 'false' : 'unknown';
  lines.push(`linearizable: ${verdict}`);
  const exitCode =
    verdict === 'true'
      ? historyCheckExitCodes.linearizable
      : verdict === 'false'
        ? historyCheckExitCodes.notLinearizable
        : historyCheckExitCodes.unknown;
  return { text: lines.join('\n'), exitCode };
}
