/**
 * Bounded parallelism over a (possibly async, possibly huge) sequence of items.
 *
 * @module
 */

/**
 * Runs `fn` on every item of `items` with at most `concurrency` calls in flight, pulling
 * items lazily (a paginated listing is never read far ahead). The first error stops new
 * work, aborts the signal passed to running calls, waits for them to settle, and is
 * rethrown. Resolves when every item has been processed.
 *
 * @example
 * ```ts
 * const sizes = new Map<string, number>();
 * await forEachConcurrent(["deno.json", "mod.ts"], 8, async (path, signal) => {
 *   sizes.set(path, (await Deno.readFile(path, { signal })).length);
 * });
 * ```
 */
export async function forEachConcurrent<T>(
  items: Iterable<T> | AsyncIterable<T>,
  concurrency: number,
  fn: (item: T, signal: AbortSignal) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
  }
  signal?.throwIfAborted();
  const inner = new AbortController();
  const onAbort = () => inner.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  const iterator = Symbol.asyncIterator in items
    ? (items as AsyncIterable<T>)[Symbol.asyncIterator]()
    : (items as Iterable<T>)[Symbol.iterator]();
  let failed = false;
  let firstError: unknown;
  let done = false;
  // Pulls are serialised: async generators queue next() calls anyway, sync ones need no care.
  let pulling: Promise<unknown> = Promise.resolve();
  const pull = (): Promise<IteratorResult<T>> => {
    const next = pulling.then(() => iterator.next());
    pulling = next.catch(() => undefined);
    return next as Promise<IteratorResult<T>>;
  };
  // The first error wins: it is kept, and aborts every other worker's item.
  const fail = (error: unknown) => {
    if (failed) return;
    failed = true;
    firstError = error;
    inner.abort(error);
  };
  const worker = async () => {
    while (!failed && !done) {
      let step: IteratorResult<T>;
      try {
        step = await pull();
      } catch (error) {
        return fail(error);
      }
      if (step.done) {
        done = true;
        return;
      }
      if (failed) return;
      try {
        inner.signal.throwIfAborted();
        await fn(step.value, inner.signal);
      } catch (error) {
        return fail(error);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    signal?.removeEventListener("abort", onAbort);
    if (failed && !done) {
      try {
        await (iterator as AsyncIterator<T>).return?.();
      } catch {
        // The listing's own cleanup error must not mask the first failure.
      }
    }
  }
  if (failed) throw firstError;
}
