/** The linearizability checker for simulator tests: common's Wing–Gong checker. */
import { checkHistory } from '@impulse/common';
import type { HistoryChecker } from '../../src/raft-sim/history-checker.js';

export const historyChecker: HistoryChecker = checkHistory;
