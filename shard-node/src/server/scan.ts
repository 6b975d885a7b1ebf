import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  ScanPageBuilder,
  allowMethods,
  parseScanQuery,
  readOnlyMethods,
  refuseBody,
  refuseUnexpectedBody,
  scanItemJson,
  scanItemOf,
  scanPageBytesMax,
  scanRangeOf,
  sendJsonText,
  toImpulseError,
} from '@impulse/common';
import type { Entry } from '../storage/index.js';
import { storageError, type KvRouteContext, type RequestListener } from './kv.js';

/**
 * The scan route, `GET /kv?start=&end=&prefix=&limit=&continue=&consistency=`: one page of this
 * replica's user keys in byte order, as JSON (see `ScanPageBody` in common). Linearizable by
 * default: on the leader, one ReadIndex round and then the scan; a follower answers `NOT_LEADER`.
 * `consistency=stale` scans the local state of any replica.
 *
 * Every key in this replica's engine belongs to its group, since slots never move yet. Once slots
 * migrate between groups (rebalancing), a scan must skip the keys of slots this group does not own
 * at the request's epoch, or a moved key would show twice (or in its old state) in the gateway's
 * merged page.
 */
export function createScanRoute(context: KvRouteContext): RequestListener {
  const { config, replica, storageMetrics, serverErrors } = context;

  async function serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const method = request.method ?? '';
    const query = parseScanQuery(request.url ?? '', config.keyBytesMax);
    refuseUnexpectedBody(request);
    const range = scanRangeOf(query);
    // An empty range (start at or past end) yields nothing, but still confirms leadership: a
    // follower answers NOT_LEADER whatever it is asked. One entry past the page tells whether keys
    // remain, so that `next` is null on the last page.
    const body = await storageMetrics
      .time('scan', () =>
        renderScanPage(
          replica.scan(range, query.limit + 1, query.consistency),
          query.limit,
          scanPageBytesMax,
        ),
      )
      .catch((error: unknown) => {
        throw storageError(error);
      });
    sendJsonText(response, 200, body, method);
  }

  return allowMethods(readOnlyMethods, function handleScan(request, response) {
    serve(request, response).catch((error: unknown) => {
      const failure = toImpulseError(error);
      serverErrors.report(failure, { method: request.method, url: request.url });
      refuseBody(request, response, failure);
    });
  });
}

/**
 * One page of entries (user keys as UTF-8 bytes, in byte order): at most `limit` items and
 * `bytesMax` bytes of items (see `ScanPageBuilder`). It reads one entry past a full page, and no
 * further, to tell whether keys remain; leaving the loop early releases the engine's iterator.
 */
export async function renderScanPage(
  entries: AsyncIterable<Entry>,
  limit: number,
  bytesMax: number,
): Promise<string> {
  const page = new ScanPageBuilder(limit, bytesMax);
  let more = false;
  for await (const entry of entries) {
    if (page.isFull) {
      more = true;
      break;
    }
    const key = entry.key.toString('utf8');
    if (!page.maybeAdd(key, scanItemJson(scanItemOf(key, entry.value)))) {
      more = true;
      break;
    }
  }
  return page.render(more);
}
