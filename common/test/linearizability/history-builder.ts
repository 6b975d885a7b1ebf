import type { HistoryEvent, OperationFunction } from '../../src/linearizability/index.js';

/** Builds histories in tests: each call appends one event with a time one step after the last. */
export class HistoryBuilder {
  readonly events: HistoryEvent[] = [];
  private time = 0;

  invoke(
    client: number,
    f: OperationFunction,
    key: string,
    value?: string | null,
    expected?: string | null,
  ): this {
    return this.push({ client, type: 'invoke', f, key, ...withValue(value), ...withExpected(expected) });
  }

  ok(client: number, f: OperationFunction, key: string, value?: string | null): this {
    return this.push({ client, type: 'ok', f, key, ...withValue(value) });
  }

  fail(client: number, f: OperationFunction, key: string): this {
    return this.push({ client, type: 'fail', f, key });
  }

  info(client: number, f: OperationFunction, key: string): this {
    return this.push({ client, type: 'info', f, key });
  }

  private push(event: Omit<HistoryEvent, 'time'>): this {
    this.time += 1;
    this.events.push({ ...event, time: this.time });
    return this;
  }
}

function withValue(value: string | null | undefined): { value?: string | null } {
  return value === undefined ? {} : { value };
}

function withExpected(expected: string | null | undefined): { expected?: string | null } {
  return expected === undefined ? {} : { expected };
}
