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
 * The verdict of a check as text: the history's size, the counterexample (the key and the
 * operations that cannot be ordered) or the undecided keys, and `linearizable: true|false|unknown`
 * last; with the exit status that goes with it (0, 1, 2).
 */
export function formatHistoryCheck(check: HistoryCheck): { text: string; exitCode: number } {
  const lines: string[] = [];
  const keys = check.perKey.size;
  const operations = [...check.perKey.values()].reduce((sum, key) => sum + key.operationCount, 0);
  lines.push(`history: ${keys} keys, ${operations} operations`);
  if (check.result === 'not-linearizable' && check.counterexample !== undefined) {
    lines.push(`key ${JSON.stringify(check.counterexample.key)}: these operations cannot be ordered:`);
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
  return { text: lines.join('\n'), exitCode: verdict === 'true' ? 0 : verdict === 'false' ? 1 : 2 };
}
