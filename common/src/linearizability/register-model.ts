import type { Operation } from './history.js';

/** The state of one key: its value, or `null` when absent. */
export type RegisterState = string | null;

/**
 * The sequential specification of one key of a key-value store. Returns the state after `op`,
 * or `undefined` when `op` cannot happen in `state` (a read that saw another value, a
 * compare-and-set whose expectation does not hold).
 */
export function stepRegister(state: RegisterState, op: Operation): RegisterState | undefined {
  switch (op.f) {
    case 'get':
      return op.output === state ? state : undefined;
    case 'put':
      return op.input;
    case 'delete':
      return null;
    case 'cas':
      return op.expected === state ? op.input : undefined;
  }
}
