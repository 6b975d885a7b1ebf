export { checkHistory } from './check-history.js';
export type {
  CheckOptions,
  Counterexample,
  DecisionMethod,
  HistoryCheck,
  KeyCheck,
} from './check-history.js';
export { decideByReadsFrom } from './reads-from.js';
export type { ReadsFromOutcome } from './reads-from.js';
export { HistoryFormatError, operationsFromHistory } from './history.js';
export type { EventType, HistoryEvent, Operation, OperationFunction } from './history.js';
export { stepRegister } from './register-model.js';
export type { RegisterState } from './register-model.js';
export { searchLinearization } from './search.js';
export type { CheckResult, SearchLimits, SearchOutcome } from './search.js';
export { shrinkCounterexample } from './shrink.js';
export type { ShrinkLimits } from './shrink.js';
export { formatHistoryCheck, historyCheckExitCodes } from './format.js';
