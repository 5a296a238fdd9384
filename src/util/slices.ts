/**
 * Long synchronous work cut into slices between which the event loop runs (timers, I/O):
 * reading many small files synchronously is faster than an async call each, but must not
 * hold back the requests an attempt has in flight meanwhile.
 *
 * @module
 */

/** Resolves after a turn of the event loop (timers and I/O run meanwhile). */
export function yieldToEventLoop(): Promise<void> {
  // setImmediate, not setTimeout: timers set from a timer's turn are clamped to 4 ms after a
  // few (nested timers), which would add more than the slice itself.
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A function that resolves at once until `ms` have passed since the event loop last ran,
 * then after a turn of it: called between steps of synchronous work, it cuts the work into
 * slices of about `ms`.
 *
 * @example
 * ```ts
 * const slice = slicer(4);
 * for (let i = 0; i < 1_000; i++) {
 *   await slice();
 *   // one short synchronous step
 * }
 * ```
 */
export function slicer(ms: number): () => Promise<void> {
  let sliceStarted = performance.now();
  return async () => {
    if (performance.now() - sliceStarted <= ms) return;
    await yieldToEventLoop();
    sliceStarted = performance.now();
  };
}
