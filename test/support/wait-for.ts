/**
 * Polls `condition` every 100 ms until it answers true, for at most `timeoutMs`; a condition that
 * throws (a process not yet listening) counts as "not yet". Throws, naming `what`, at the deadline.
 */
export async function waitFor(
  what: string,
  condition: () => Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}
