import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerErrorLog } from '@impulse/common';
import {
  ImpulseError,
  ScanPageBuilder,
  allowMethods,
  isEmptyScanRange,
  parseScanQuery,
  readOnlyMethods,
  refuseBody,
  refuseUnexpectedBody,
  scanAnswerBytesMax,
  scanPageBytesMax,
  scanQueryPath,
  scanRangeOf,
  sendJsonText,
  toImpulseError,
  type GroupSpec,
  type ScanQuery,
} from '@impulse/common';
import type { GatewayConfig } from './config.js';
import type { GroupReader } from './group-reader.js';
import { mergeScanPages, parseGroupPage } from './scan-merge.js';

export interface ScanRouteContext {
  readonly config: GatewayConfig;
  readonly groups: readonly GroupSpec[];
  readonly reader: GroupReader;
  readonly serverErrors: ServerErrorLog;
  /** The gauge of scans being served. */
  readonly inFlight: { inc(): void; dec(): void };
  /** The count of scans refused past `scansInFlightMax`. */
  readonly refusals: { inc(): void };
}

/**
 * `GET /kv?start=&end=&prefix=&limit=&continue=&consistency=`: an ordered range scan across every
 * group. The query is validated here (a refused scan reaches no group), then the same scan goes to
 * the leader of every group in parallel, each asked for up to `limit` items from the same start;
 * the pages are merged into one global byte order and cut at `limit` (`mergeScanPages`). The page
 * carries a `next` token when keys remain: the next page starts right after its last key.
 *
 * A scan needs every group: if one fails within the request's deadline (after the retries that a
 * key request would get), the whole scan fails with that group's error (`GROUP_UNAVAILABLE`,
 * `UPSTREAM_TIMEOUT`, ...), never a silently partial page, and the other groups' reads stop.
 *
 * Every group answers all of its keys in the range: while slots never move this is exact. Once slots
 * migrate between groups (rebalancing), each group must filter its keys by slot ownership at the
 * request's epoch, or a key being moved would show twice (the merge refuses that) or in its old state.
 */
export function createScanRoute(
  context: ScanRouteContext,
): (request: IncomingMessage, response: ServerResponse) => void {
  const { config, groups, reader, serverErrors, inFlight, refusals } = context;
  const answerBytesMax = scanAnswerBytesMax(config.keyBytesMax, config.valueBytesMax);
  // Each scan in flight holds up to a page per group: a bound on scans is a bound on that memory.
  let scansInFlight = 0;

  async function gather(query: ScanQuery, response: ServerResponse): Promise<string> {
    if (isEmptyScanRange(scanRangeOf(query)))
      return new ScanPageBuilder(query.limit, scanPageBytesMax).render(false);
    const controller = new AbortController();
    const onClose = (): void => controller.abort(new Error('the client went away'));
    response.once('close', onClose);
    const path = scanQueryPath(query);
    const deadlineMs = Date.now() + config.requestDeadline;
    try {
      const pages = await Promise.all(
        groups.map(async (group) => {
          try {
            const body = await reader.get({
              group,
              path,
              deadlineMs,
              signal: controller.signal,
              bodyBytesMax: answerBytesMax,
            });
            return parseGroupPage(group.id, body);
          } catch (error) {
            // Aborted: another group failed first (its error answers the client), or the client left.
            if (controller.signal.aborted) throw error;
            const failure = scanFailure(group, error);
            // The scan cannot succeed any more: stop waiting for the other groups.
            controller.abort(failure);
            throw failure;
          }
        }),
      );
      return mergeScanPages(pages, query.limit, scanPageBytesMax);
    } finally {
      response.off('close', onClose);
    }
  }

  async function serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const method = request.method ?? '';
    const query = parseScanQuery(request.url ?? '', config.keyBytesMax);
    refuseUnexpectedBody(request);
    if (scansInFlight >= config.scansInFlightMax) {
      refusals.inc();
      throw new ImpulseError(
        'TOO_MANY_REQUESTS',
        `${config.scansInFlightMax} range scans are in flight already (--scans-in-flight-max); retry later`,
      );
    }
    scansInFlight++;
    inFlight.inc();
    let body: string;
    try {
      body = await gather(query, response);
    } finally {
      scansInFlight--;
      inFlight.dec();
    }
    sendJsonText(response, 200, body, method);
  }

  return allowMethods(readOnlyMethods, function handleScan(request, response) {
    serve(request, response).catch((error: unknown) => {
      // A client that went away gets no answer.
      if (response.destroyed) return;
      const failure = toImpulseError(error);
      serverErrors.report(failure, { method: request.method, url: request.url });
      refuseBody(request, response, failure);
    });
  });
}

/** A group's failure as the scan's: same code and details, and a message that says a scan failed. */
function scanFailure(group: GroupSpec, error: unknown): unknown {
  if (!(error instanceof ImpulseError)) return error;
  return new ImpulseError(error.code, `the scan needs every shard group: ${error.message}`, {
    details: { ...error.details, group: group.id },
    cause: error,
  });
}
