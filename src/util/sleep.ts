/**
 * Abortable delays.
 *
 * @module
 */

/**
 * Resolves after `ms` milliseconds, or rejects with the signal's reason as soon as `signal`
 * aborts. The timer is cleared on abort, so a pending sleep never keeps the process alive.
 *
 * @example
 * ```ts
 * await sleep(100, AbortSignal.timeout(1_000));
 * ```
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Polls `condition` until it returns a truthy value or `timeoutMs` passes. Meant for tests and
 * start-up checks that wait for a condition with a deadline instead of sleeping for luck.
 *
 * @throws {Error} naming `what` when the deadline passes.
 * @example
 * ```ts
 * const readyAt = Date.now() + 50;
 * await waitFor(() => Date.now() >= readyAt || undefined, { timeoutMs: 5_000, what: "ready" });
 * ```
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  options: { timeoutMs?: number; intervalMs?: number; what?: string; signal?: AbortSignal } = {},
): Promise<NonNullable<T>> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 25;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (true) {
    try {
      const value = await condition();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${options.what ?? "condition"}${detail}`,
      );
    }
    await sleep(intervalMs, options.signal);
  }
}
