/**
 * Runs `run` on every item with at most `inFlightMax` runs at once, taking the items in order as
 * runs finish; resolves once every run has settled. `run` must not reject: each item's outcome is
 * its own business (a node records a replica that fails to open and opens the others).
 */
export async function forEachConcurrently<T>(
  items: readonly T[],
  inFlightMax: number,
  run: (item: T) => Promise<void>,
): Promise<void> {
  if (!Number.isSafeInteger(inFlightMax) || inFlightMax < 1)
    throw new Error(`inFlightMax must be a positive integer, got ${inFlightMax}`);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await run(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlightMax, items.length) }, worker));
}
