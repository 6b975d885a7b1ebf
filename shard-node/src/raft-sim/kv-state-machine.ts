/**
 * The simulator's replicated state machine: a small key-value map driven by commands in log
 * entries. Each command carries a request id; a command applied twice (a MsgProp duplicated by the
 * network, a client's retry) takes effect once, as a real store must ensure.
 */

export type KvCommand =
  | { readonly requestId: number; readonly op: 'put'; readonly key: string; readonly value: string }
  | { readonly requestId: number; readonly op: 'delete'; readonly key: string }
  | { readonly requestId: number; readonly op: 'get'; readonly key: string }
  /** A probe that only proves the log makes progress (liveness checks, benchmarks). */
  | { readonly requestId: number; readonly op: 'noop' };

/** What applying a command answered: the value read by a get, else null. */
export interface KvApplyResult {
  readonly requestId: number;
  readonly duplicate: boolean;
  readonly value: string | null;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(command: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(command));
}

export function decodeCommand(data: Uint8Array): KvCommand {
  return JSON.parse(decoder.decode(data)) as KvCommand;
}

export class KvStateMachine {
  private readonly values = new Map<string, string>();
  private readonly appliedRequestIds = new Set<number>();

  hasApplied(requestId: number): boolean {
    return this.appliedRequestIds.has(requestId);
  }

  get(key: string): string | null {
    return this.values.get(key) ?? null;
  }

  apply(command: KvCommand): KvApplyResult {
    if (this.appliedRequestIds.has(command.requestId)) {
      return { requestId: command.requestId, duplicate: true, value: null };
    }
    this.appliedRequestIds.add(command.requestId);
    switch (command.op) {
      case 'put':
        this.values.set(command.key, command.value);
        return { requestId: command.requestId, duplicate: false, value: null };
      case 'delete':
        this.values.delete(command.key);
        return { requestId: command.requestId, duplicate: false, value: null };
      case 'get':
        return { requestId: command.requestId, duplicate: false, value: this.get(command.key) };
      case 'noop':
        return { requestId: command.requestId, duplicate: false, value: null };
    }
  }

  /** A deterministic encoding (sorted), so equal states have equal snapshots. */
  encodeSnapshot(): Uint8Array {
    const values = [...this.values].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const requestIds = [...this.appliedRequestIds].sort((a, b) => a - b);
    return encoder.encode(JSON.stringify({ values, requestIds }));
  }

  static fromSnapshot(data: Uint8Array): KvStateMachine {
    const machine = new KvStateMachine();
    if (data.byteLength === 0) return machine;
    const parsed = JSON.parse(decoder.decode(data)) as { values: [string, string][]; requestIds: number[] };
    for (const [key, value] of parsed.values) machine.values.set(key, value);
    for (const id of parsed.requestIds) machine.appliedRequestIds.add(id);
    return machine;
  }
}
