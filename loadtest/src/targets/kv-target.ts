/**
 * What a benchmark does to a store, whichever store it is. Each method resolves once the store
 * has answered and throws on any answer that is not a success, so the drivers count it as an error.
 */
export interface KvTarget {
  readonly name: string;
  put(key: string, value: Uint8Array): Promise<void>;
  /** The value, or undefined when the key is absent. */
  get(key: string): Promise<Uint8Array | undefined>;
  delete(key: string): Promise<void>;
  /** Up to `limit` records from `startKey` on, in key order; resolves with how many came back. */
  scan(startKey: string, limit: number): Promise<number>;
  /** Whether the store serves ordered scans (workload E); asked once before a run. */
  supportsScan(): Promise<boolean>;
  close(): Promise<void>;
}

/** A store answered something other than success. */
export class TargetError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'TargetError';
  }
}

export const scansUnsupportedMessage =
  'workload e needs ordered scans (GET /kv?start=&limit=), and scans are not supported by the target yet';
