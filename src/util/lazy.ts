/**
 * Loading once, on first use.
 *
 * @module
 */

/**
 * Wraps `load` so that it runs on the first call and every later call shares its promise;
 * a load that rejects is forgotten, so the next call tries again (a module that failed to
 * import, say, is not failed for good).
 *
 * @example
 * ```ts
 * let loads = 0;
 * const config = loadOnce(() => Promise.resolve(++loads));
 * await config();
 * await config(); // loads === 1
 * ```
 */
export function loadOnce<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined;
  return () => {
    loading ??= load().catch((error) => {
      loading = undefined;
      throw error;
    });
    return loading;
  };
}

/**
 * Wraps `build` so that it runs on the first call and every later call returns its value
 * (a `build` that throws runs again next time).
 *
 * @example
 * ```ts
 * let builds = 0;
 * const table = buildOnce(() => ++builds);
 * table();
 * table(); // builds === 1
 * ```
 */
export function buildOnce<T>(build: () => T): () => T {
  let built = false;
  let value: T;
  return () => {
    if (!built) {
      value = build();
      built = true;
    }
    return value;
  };
}
