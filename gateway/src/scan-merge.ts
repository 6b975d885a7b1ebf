import { ImpulseError, ScanPageBuilder, scanItemJson, type ScanItem } from '@impulse/common';

/** One item of a group's page, with its key's UTF-8 bytes for comparison and its JSON for the page. */
export interface GroupItem {
  readonly key: string;
  readonly keyBytes: Buffer;
  readonly json: string;
}

/** A group's answer to one scan: its first items from the scan's start, in ascending byte order. */
export interface GroupPage {
  readonly groupId: string;
  readonly items: readonly GroupItem[];
  /** Whether the group has keys past its last item (its `next` was not null). */
  readonly more: boolean;
}

/**
 * Reads a group's scan answer, checking what the merge relies on: items with a string key and
 * value, keys strictly ascending in byte order, and at least one item when keys remain. Anything
 * else is a broken replica, answered as `INTERNAL`, never merged into a wrong page.
 */
export function parseGroupPage(groupId: string, body: Buffer): GroupPage {
  const malformed = (reason: string): ImpulseError =>
    new ImpulseError('INTERNAL', `shard group ${groupId} answered a malformed scan page: ${reason}`, {
      details: { group: groupId },
    });
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw malformed('not JSON');
  }
  const { items, next } = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<
    string,
    unknown
  >;
  if (!Array.isArray(items)) throw malformed('no items');
  if (next !== null && typeof next !== 'string') throw malformed('next is neither a token nor null');
  const groupItems: GroupItem[] = [];
  for (const candidate of items as unknown[]) {
    const { key, value, encoding } = (
      typeof candidate === 'object' && candidate !== null ? candidate : {}
    ) as Record<string, unknown>;
    if (typeof key !== 'string' || typeof value !== 'string') throw malformed('an item without key or value');
    if (encoding !== undefined && encoding !== 'base64') throw malformed('an item with an unknown encoding');
    const item: ScanItem = encoding === undefined ? { key, value } : { key, value, encoding };
    const keyBytes = Buffer.from(key, 'utf8');
    const previous = groupItems.at(-1);
    if (previous !== undefined && Buffer.compare(previous.keyBytes, keyBytes) >= 0) {
      throw malformed('keys out of order');
    }
    groupItems.push({ key, keyBytes, json: scanItemJson(item) });
  }
  if (next !== null && groupItems.length === 0) throw malformed('a continuation without items');
  return { groupId, items: groupItems, more: next !== null };
}

/**
 * Merges the groups' pages of one scan into one page of at most `limit` items and `bytesMax` bytes
 * of items (see `ScanPageBuilder`), in one global byte order, and renders it.
 *
 * Every group was asked for up to `limit` items from the same start, so the first `limit` keys of
 * the whole range are among the items gathered, unless a group stopped short of `limit` on its byte
 * bound: past that group's last key, keys of that group may be missing. The merged page therefore
 * stops at the lowest last key of any group that has more (its frontier), and continues from there.
 * Every group that has more returned an item, so the page always holds one and always progresses.
 *
 * A key in two groups' pages breaks the invariant that a key lives in the one group its slot maps
 * to; the merge refuses to guess which copy is current, and fails the scan with `INTERNAL` when
 * such a key would go on the page (one past the page is not looked for).
 */
export function mergeScanPages(pages: readonly GroupPage[], limit: number, bytesMax: number): string {
  let frontier: Buffer | undefined;
  for (const page of pages) {
    const last = page.items.at(-1);
    if (!page.more || last === undefined) continue;
    if (frontier === undefined || Buffer.compare(last.keyBytes, frontier) < 0) frontier = last.keyBytes;
  }
  const merged = new ScanPageBuilder(limit, bytesMax);
  const positions = pages.map(() => 0);
  let more: boolean;
  for (;;) {
    if (merged.isFull) {
      more = pages.some((page, index) => page.more || page.items[positions[index] as number] !== undefined);
      break;
    }
    // The lowest head among the groups: a linear pass is enough, as the page stops at `limit` items.
    let lowest: number | undefined;
    let lowestItem: GroupItem | undefined;
    let duplicate: number | undefined;
    for (let index = 0; index < pages.length; index++) {
      const item = (pages[index] as GroupPage).items[positions[index] as number];
      if (item === undefined) continue;
      const order = lowestItem === undefined ? -1 : Buffer.compare(item.keyBytes, lowestItem.keyBytes);
      if (order < 0) {
        lowest = index;
        lowestItem = item;
        duplicate = undefined;
      } else if (order === 0) {
        duplicate = index;
      }
    }
    if (lowest === undefined || lowestItem === undefined) {
      // Every gathered item is on the page: keys remain if a group said so.
      more = pages.some((page) => page.more);
      break;
    }
    if (frontier !== undefined && Buffer.compare(lowestItem.keyBytes, frontier) > 0) {
      more = true;
      break;
    }
    if (!merged.maybeAdd(lowestItem.key, lowestItem.json)) {
      more = true;
      break;
    }
    if (duplicate !== undefined) {
      throw new ImpulseError(
        'INTERNAL',
        `the key ${JSON.stringify(lowestItem.key)} was answered by two shard groups; a key lives in one group`,
        {
          details: {
            key: lowestItem.key,
            groups: [(pages[lowest] as GroupPage).groupId, (pages[duplicate] as GroupPage).groupId],
          },
        },
      );
    }
    positions[lowest] = (positions[lowest] as number) + 1;
  }
  return merged.render(more);
}
