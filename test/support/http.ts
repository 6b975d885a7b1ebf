import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';

export interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  json(): unknown;
}

export interface RawRequestOptions {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string | number>>;
  /** Sent as one chunk; or a list of chunks, sent chunked unless a content-length header is set. */
  readonly body?: Buffer | string | readonly Buffer[];
  readonly timeoutMs?: number;
}

/**
 * An HTTP request with full control over the path (sent exactly as given, malformed escapes
 * included), the headers and the body framing. Never uses a keep-alive agent, so tests do not
 * leak sockets.
 */
export function rawRequest(
  baseUrl: string,
  path: string,
  options: RawRequestOptions = {},
): Promise<RawResponse> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const request = httpRequest({
      host: url.hostname,
      port: url.port,
      method: options.method ?? 'GET',
      path,
      headers: options.headers,
      agent: false,
      timeout: options.timeoutMs ?? 10_000,
    });
    request.on('timeout', () =>
      request.destroy(new Error(`request timed out: ${options.method ?? 'GET'} ${path}`)),
    );
    let responded = false;
    // A server that refuses a body answers and closes while the client still writes: the write
    // error that follows the answer is expected and ignored.
    request.on('error', (error) => {
      if (!responded) reject(error);
    });
    request.on('response', (response) => {
      responded = true;
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body,
          json: () => JSON.parse(body.toString('utf8')) as unknown,
        });
      });
    });
    const body = options.body;
    if (Array.isArray(body)) {
      // Chunks go one at a time, and stop as soon as the server has answered.
      const chunks = [...(body as readonly Buffer[])];
      const writeNext = (): void => {
        if (responded || request.destroyed) return;
        const chunk = chunks.shift();
        if (chunk === undefined) {
          request.end();
          return;
        }
        if (request.write(chunk)) setImmediate(writeNext);
        else request.once('drain', writeNext);
      };
      writeNext();
    } else {
      request.end(body as Buffer | string | undefined);
    }
  });
}

export function errorCodeOf(response: RawResponse): string | undefined {
  try {
    return (response.json() as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}
