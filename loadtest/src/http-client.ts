/** The answer to one HTTP request: its status and whole body. */
export interface HttpAnswer {
  readonly status: number;
  readonly body: Buffer;
}

/**
 * A keep-alive HTTP/1.1 client to one origin. Two implementations (undici's Pool and node:http
 * with a keep-alive Agent) so that the faster one can be measured and chosen (`--client`).
 */
export interface HttpClient {
  request(method: string, path: string, body?: Uint8Array, contentType?: string): Promise<HttpAnswer>;
  close(): Promise<void>;
}

export type HttpClientName = 'undici' | 'node';
export const httpClientNames: readonly HttpClientName[] = ['undici', 'node'];

/** Connections to one origin; a request waits for a free one, so this bounds what is in flight. */
export interface HttpClientOptions {
  readonly origin: string;
  readonly connectionsMax: number;
  /** A request that gets no answer within this fails, so a stalled target cannot hang a run. */
  readonly requestTimeoutMs: number;
}
