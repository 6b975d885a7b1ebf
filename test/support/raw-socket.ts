import { connect } from 'node:net';

/** One HTTP/1.1 answer as read off a raw socket. */
export interface RawAnswer {
  readonly status: number;
  /** Header names lower-cased; a repeated header keeps its last value. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  /** `error.code` of a JSON error body, if it is one. */
  readonly code: string | undefined;
}

export interface RawExchange {
  readonly answers: readonly RawAnswer[];
  /** Whether the server closed the connection before `timeoutMs`. */
  readonly closed: boolean;
  /** Bytes after the last complete answer (a partial or unparseable answer). */
  readonly rest: Buffer;
}

export interface RawExchangeOptions {
  /** Stop once this many answers are read (default: read until the server closes or the timeout). */
  readonly answers?: number;
  readonly timeoutMs?: number;
  /** Whether each expected answer is to a HEAD (no body however long its content-length). */
  readonly headAnswers?: readonly boolean[];
}

/**
 * Writes `bytes` (one or more requests, pipelined, framed however the test likes) on a new
 * connection to `baseUrl` and reads the answers off the socket, parsing each by its
 * `content-length`: what a hostile client sees, with no HTTP library in between.
 */
export function rawExchange(
  baseUrl: string,
  bytes: string | Buffer | readonly (string | Buffer)[],
  options: RawExchangeOptions = {},
): Promise<RawExchange> {
  const url = new URL(baseUrl);
  const parts = Array.isArray(bytes) ? (bytes as readonly (string | Buffer)[]) : [bytes as string | Buffer];
  return new Promise((resolve) => {
    const socket = connect(Number(url.port), url.hostname);
    let received = Buffer.alloc(0);
    const answers: RawAnswer[] = [];
    let closed = false;
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ answers, closed, rest: received });
    };
    const timer = setTimeout(finish, options.timeoutMs ?? 5000);
    socket.on('error', () => {});
    socket.on('connect', () => {
      for (const part of parts) socket.write(part);
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      for (;;) {
        const headEnd = received.indexOf('\r\n\r\n');
        if (headEnd === -1) break;
        const lines = received.subarray(0, headEnd).toString('latin1').split('\r\n');
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
        const headers: Record<string, string> = {};
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
        }
        const isHead = options.headAnswers?.[answers.length] === true;
        const bodyBytes =
          isHead || status === 204 || status === 304 ? 0 : Number(headers['content-length'] ?? 0);
        if (received.length < headEnd + 4 + bodyBytes) break;
        const body = Buffer.from(received.subarray(headEnd + 4, headEnd + 4 + bodyBytes));
        received = received.subarray(headEnd + 4 + bodyBytes);
        answers.push({ status, headers, body, code: errorCodeOfBody(body) });
        if (options.answers !== undefined && answers.length >= options.answers) {
          finish();
          return;
        }
      }
    });
    socket.on('close', () => {
      closed = true;
      finish();
    });
  });
}

function errorCodeOfBody(body: Buffer): string | undefined {
  try {
    const code = (JSON.parse(body.toString('utf8')) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

/** A request with the given method, target, extra header lines and body, framed by Content-Length. */
export function httpRequest(
  method: string,
  target: string,
  options: {
    readonly headers?: readonly string[];
    readonly body?: string | Buffer;
    readonly close?: boolean;
  } = {},
): Buffer {
  const body = typeof options.body === 'string' ? Buffer.from(options.body) : options.body;
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: impulse.test', ...(options.headers ?? [])];
  if (body !== undefined) lines.push(`Content-Length: ${body.length}`);
  if (options.close === true) lines.push('Connection: close');
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body ?? Buffer.alloc(0)]);
}
