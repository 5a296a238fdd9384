/**
 * Reading an async sequence ahead of its consumer, so that its I/O (a paginated listing's
 * requests) overlaps other work done before the consumer starts.
 *
 * @module
 */

/** An async sequence being read ahead; see {@linkcode readAhead}. */
export interface ReadAhead<T> extends AsyncIterable<T> {
  /**
   * Stops reading ahead (the source's iterator is closed after the item in flight), for a
   * caller that will not consume it; items buffered are dropped. Never throws.
   */
  cancel(): void;
}

/**
 * Starts pulling the items of `source` now, into memory, and returns a sequence of them
 * that can be iterated once, from the first item: it yields what was buffered, then waits
 * for the rest. An error of the source is kept and thrown to the consumer where the source
 * threw it (never an unhandled rejection, even when nobody consumes it).
 *
 * At most `maxBuffered` items not consumed yet are held: the pulling pauses there until
 * the consumer takes some.
 *
 * @example
 * ```ts
 * async function* numbers() {
 *   for (let i = 0; i < 3; i++) yield i;
 * }
 * const ahead = readAhead(numbers());
 * // ... other work while it reads ...
 * for await (const n of ahead) console.log(n);
 * ```
 */
export function readAhead<T>(source: AsyncIterable<T>, maxBuffered = 50_000): ReadAhead<T> {
  if (!Number.isInteger(maxBuffered) || maxBuffered < 1) {
    throw new RangeError(`maxBuffered must be a positive integer, got ${maxBuffered}`);
  }
  const buffer: T[] = [];
  let head = 0;
  let finished = false;
  let failed = false;
  let error: unknown;
  let cancelled = false;
  let taken = false;
  let wake: (() => void) | undefined;
  let drained: (() => void) | undefined;
  const notify = () => {
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  const notifyDrained = () => {
    const resume = drained;
    drained = undefined;
    resume?.();
  };
  const iterator = source[Symbol.asyncIterator]();
  void (async () => {
    try {
      while (!cancelled) {
        while (buffer.length - head >= maxBuffered && !cancelled) {
          await new Promise<void>((resolve) => (drained = resolve));
        }
        if (cancelled) break;
        const next = await iterator.next();
        if (next.done) break;
        if (cancelled) break;
        buffer.push(next.value);
        notify();
      }
      if (cancelled) await iterator.return?.();
    } catch (caught) {
      failed = true;
      error = caught;
    } finally {
      finished = true;
      notify();
    }
  })();
  return {
    cancel() {
      cancelled = true;
      buffer.length = 0;
      head = 0;
      notifyDrained();
    },
    async *[Symbol.asyncIterator]() {
      if (taken) throw new Error("a read-ahead sequence can be iterated only once");
      taken = true;
      try {
        while (true) {
          if (head < buffer.length) {
            const item = buffer[head]!;
            // Consumed items are released as it goes (in slices, to keep shifting cheap).
            if (++head >= 1024) {
              buffer.splice(0, head);
              head = 0;
            }
            notifyDrained();
            yield item;
            continue;
          }
          if (finished) {
            if (failed) throw error;
            return;
          }
          await new Promise<void>((resolve) => (wake = resolve));
        }
      } finally {
        // A consumer stopping early (an error in its loop) stops the reading too.
        cancelled = true;
        notifyDrained();
      }
    },
  };
}
