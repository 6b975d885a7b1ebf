/**
 * Admin authentication: a process given an admin token answers its admin routes (`/admin/...`)
 * only to requests that carry it as `Authorization: Bearer <token>` (RFC 6750); a process given
 * none refuses every admin change and answers admin reads (docs/decisions/0017-admin-authentication.md).
 * Health, readiness and metrics are not admin routes: probes and Prometheus need no token.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ConfigError } from './config.js';
import { ImpulseError } from './errors.js';
import { readOnlyMethods, refuseBody } from './http.js';
import { readSecret } from './secret.js';

/** The shortest admin token accepted. */
export const adminTokenBytesMin = 16;

/** The variable that may hold the admin token itself (there is no flag for it: flags show in `ps`). */
export const adminTokenVariable = 'IMPULSE_ADMIN_TOKEN';

/**
 * What a bearer token may hold (RFC 6750's b64token): letters, digits, `-._~+/`, then `=` padding.
 * A configured token is checked against it, so that every client can send it as it is.
 */
const bearerTokenPattern = /^[A-Za-z0-9\-._~+/]+=*$/;

/** `Authorization: Bearer <token>`: the scheme in any case, then one or more spaces. */
const authorizationPattern = /^bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/** The longest `Authorization` header read; a longer one is malformed without being parsed. */
const authorizationBytesMax = 4096;

/** The realm every `WWW-Authenticate` challenge names. */
const realm = 'impulse-admin';

/**
 * The path of every admin route: `/admin` and what is under it, in any letter case, since express
 * routes `/ADMIN/status` as `/admin/status`.
 */
const adminPathPattern = /^\/admin(?:[/?]|$)/i;

/** Whether the request target is an admin route's. */
export function isAdminPath(url: string): boolean {
  return adminPathPattern.test(url);
}

/**
 * The admin token from `--admin-token-file` or IMPULSE_ADMIN_TOKEN (never both), without a
 * trailing newline; undefined when neither is given. Too short a token, one with characters a
 * bearer token cannot carry, or a file that cannot be read is a configuration error.
 */
export function readAdminToken(
  file: string,
  env: Readonly<Record<string, string | undefined>>,
): Buffer | undefined {
  const token = readSecret({
    name: 'the admin token',
    fileFlag: '--admin-token-file',
    file,
    environmentVariable: adminTokenVariable,
    fromEnvironment: env[adminTokenVariable],
    bytesMin: adminTokenBytesMin,
  });
  if (token !== undefined && !bearerTokenPattern.test(token.toString('latin1')))
    throw new ConfigError([
      `the admin token (${file !== '' ? `--admin-token-file ${file}` : adminTokenVariable}) holds characters a bearer token cannot carry: use letters, digits and - . _ ~ + / (\`openssl rand -hex 32\` makes one)`,
    ]);
  return token;
}

/** The headers that carry an admin token on a request to an admin route; none without a token. */
export function adminHeaders(token: Uint8Array | string | undefined): Record<string, string> {
  if (token === undefined) return {};
  const text = typeof token === 'string' ? token : Buffer.from(token).toString('latin1');
  return { authorization: `Bearer ${text}` };
}

/** Why an admin request was refused: the `reason` of its `ADMIN_UNAUTHORIZED` answer. */
export type AdminRefusalReason = 'missing' | 'malformed' | 'invalid' | 'notConfigured';

/** A refused admin request: the error answered, and the challenge of its `WWW-Authenticate`. */
export interface AdminRefusal {
  readonly error: ImpulseError;
  readonly challenge: string;
}

function sha256(bytes: Uint8Array | string): Buffer {
  return createHash('sha256').update(bytes).digest();
}

function refusal(reason: AdminRefusalReason, message: string, challengeError?: string): AdminRefusal {
  return {
    error: new ImpulseError('ADMIN_UNAUTHORIZED', message, { details: { reason } }),
    challenge: `Bearer realm="${realm}"${challengeError === undefined ? '' : `, error="${challengeError}"`}`,
  };
}

/**
 * The admin check of one process. With a token, every request to an admin route must carry it;
 * without one, admin reads (GET, HEAD) are answered and every other method is refused.
 *
 * The token is kept only as its SHA-256 digest, and a presented token is compared by digest with
 * `timingSafeEqual`: the comparison takes the same time whatever the token sent and whatever its
 * length, so that timing tells nothing of the token.
 */
export class AdminAuth {
  readonly #digest: Buffer | undefined;

  constructor(token: Uint8Array | undefined) {
    this.#digest = token === undefined ? undefined : sha256(token);
  }

  /** Whether the process was given an admin token. */
  get configured(): boolean {
    return this.#digest !== undefined;
  }

  /** Why a request to an admin route must be refused, or undefined when it may go on. */
  refusalOf(method: string | undefined, authorization: string | undefined): AdminRefusal | undefined {
    if (this.#digest === undefined) {
      if (readOnlyMethods.includes(method ?? '')) return undefined;
      return refusal(
        'notConfigured',
        `this process has no admin token (--admin-token-file or ${adminTokenVariable}), so it takes no admin change; give it one to use the admin routes`,
      );
    }
    if (authorization === undefined || authorization === '')
      return refusal('missing', "admin routes need the admin token: send 'Authorization: Bearer <token>'");
    const match =
      authorization.length > authorizationBytesMax ? null : authorizationPattern.exec(authorization);
    if (match === null)
      return refusal(
        'malformed',
        "the Authorization header is not 'Bearer <token>' with a bearer token (letters, digits, - . _ ~ + /)",
        'invalid_request',
      );
    if (!timingSafeEqual(sha256(match[1] as string), this.#digest))
      return refusal('invalid', 'the admin token is not the one this process was given', 'invalid_token');
    return undefined;
  }

  /** Whether a request may go on: it is not to an admin route, or it passes the check. */
  permits(request: IncomingMessage): boolean {
    return (
      !isAdminPath(request.url ?? '') ||
      this.refusalOf(request.method, request.headers.authorization) === undefined
    );
  }

  /**
   * Refuses a request to an admin route that may not go on (`401 ADMIN_UNAUTHORIZED`, with a
   * `WWW-Authenticate` challenge; a body sent is not read) and says whether it did. Any other
   * request is left alone.
   */
  maybeRefuse(request: IncomingMessage, response: ServerResponse): boolean {
    if (!isAdminPath(request.url ?? '')) return false;
    const refused = this.refusalOf(request.method, request.headers.authorization);
    if (refused === undefined) return false;
    refuseBody(request, response, refused.error, { 'www-authenticate': refused.challenge });
    return true;
  }

  /** `maybeRefuse` as an express middleware: the request goes on to the routes unless refused. */
  middleware(): (request: IncomingMessage, response: ServerResponse, next: () => void) => void {
    return (request, response, next) => {
      if (!this.maybeRefuse(request, response)) next();
    };
  }
}
