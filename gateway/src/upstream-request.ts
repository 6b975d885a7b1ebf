import { groupHeader, keyRequestTarget, requestIdHeader, slotHeader, type KeyRequest } from '@impulse/common';

/** The methods of the key route, the only requests the gateway proxies. */
export type KeyMethod = 'GET' | 'HEAD' | 'PUT' | 'DELETE';

export interface UpstreamRequestSpec {
  readonly method: KeyMethod;
  /** The key and read consistency the gateway parsed from the client's target. */
  readonly target: KeyRequest;
  /** The slot the gateway routed by: the replica checks that the key hashes to it. */
  readonly slot: number;
  /** The group the gateway routed to: a node hosts many and serves this one's replica. */
  readonly groupId: string;
  /** Writes only: the id under which the group applies the write once. */
  readonly requestId: string | undefined;
  /** The bytes of the body sent (a `PUT`'s value; nothing for the other methods). */
  readonly bodyBytes: number;
  /** `host:port` of the replica. */
  readonly authority: string;
}

/**
 * The request the gateway sends a replica, built from what the gateway parsed and checked, and
 * from nothing else of the client's request.
 *
 * Copying the client's request is how one client smuggled requests past the gateway and broke
 * others: its framing headers (`Content-Length` on a `GET`, `Transfer-Encoding`, ...) reached the
 * replica over a shared keep-alive connection, and its raw path was normalised on the way (`//`,
 * `\`, `#`, `http:/`), so the replica stored a key other than the one the gateway routed. Here the
 * method is one of four, the path is the key escaped by `pathForKey` (no `/`, `.`, `:` or `#` left
 * to normalise), `Content-Length` is the number of bytes sent, and the headers are these and no
 * others:
 *
 * | header                 | when                 |
 * | ---------------------- | -------------------- |
 * | `host`                 | always: the replica  |
 * | `x-impulse-slot`       | always               |
 * | `x-impulse-group`      | always               |
 * | `x-impulse-request-id` | `PUT`, `DELETE`      |
 * | `content-type`         | `PUT`: octet-stream  |
 * | `content-length`       | `PUT`, `DELETE`      |
 *
 * node's keep-alive agent adds `connection: keep-alive`, the gateway's own hop header.
 *
 * http-proxy takes this object where it would take the client's request: it reads `method`,
 * `url` (as is, with the `toProxy` option) and `headers`, listens for `aborted` and `error`, and
 * reads `socket.destroyed` when the upstream request fails.
 */
export class UpstreamRequest {
  readonly httpVersion = '1.1';
  /**
   * http-proxy asks whether the client's socket is gone before it reports an upstream failure; the
   * forwarder watches the client itself and wants every failure reported, so this socket is never
   * destroyed.
   */
  readonly socket = { destroyed: false } as const;
  readonly method: KeyMethod;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;

  constructor(spec: UpstreamRequestSpec) {
    this.method = spec.method;
    this.url = keyRequestTarget(
      spec.method === 'GET' || spec.method === 'HEAD'
        ? spec.target
        : { ...spec.target, consistency: 'linearizable' },
    );
    this.headers = Object.freeze(upstreamHeaders(spec));
  }

  /**
   * http-proxy listens for the client request's `aborted` and `error` events; this request never
   * emits them (a client that goes away is seen by the forwarder through its response's `close`).
   */
  on(): this {
    return this;
  }
}

/** The exact header set of an upstream request (see `UpstreamRequest`). */
export function upstreamHeaders(spec: UpstreamRequestSpec): Record<string, string> {
  const headers: Record<string, string> = {
    host: spec.authority,
    [slotHeader]: String(spec.slot),
    [groupHeader]: spec.groupId,
  };
  if (spec.method === 'PUT' || spec.method === 'DELETE') {
    if (spec.requestId !== undefined) headers[requestIdHeader] = spec.requestId;
    if (spec.method === 'PUT') headers['content-type'] = 'application/octet-stream';
    headers['content-length'] = String(spec.bodyBytes);
  }
  return headers;
}
