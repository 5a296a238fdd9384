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
