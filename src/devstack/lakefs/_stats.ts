/**
 * Request counters of the demo lakeFS server, by lakeFS operation id (`uploadObject`,
 * `deleteObjects`, `mergeIntoBranch`, ...). Counted before fault injection, so retried tries
 * count too.
 *
 * @module
 */

/** Request counts per operation. */
export class LakeFsServerStats {
  readonly #counts = new Map<string, number>();

  /** Adds one request of `operation`. */
  record(operation: string): void {
    this.#counts.set(operation, (this.#counts.get(operation) ?? 0) + 1);
  }

  /** Requests of `operation` since start or the last reset. */
  count(operation: string): number {
    return this.#counts.get(operation) ?? 0;
  }

  /** All counts. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.#counts);
  }

  /** Zeroes every counter. */
  reset(): void {
    this.#counts.clear();
  }
}
