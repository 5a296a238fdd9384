/**
 * Retry with capped exponential backoff and full jitter, shared by the Conductor and lakeFS
 * clients (which must not import each other).
 *
 * @module
 */
import { sleep } from "./sleep.ts";

/** Options of {@linkcode retry}. */
export interface RetryOptions {
  /** Total tries including the first. `Infinity` retries until success or abort. @default 5 */
  attempts?: number;
  /** First backoff in ms; doubles each retry. @default 200 */
  baseDelayMs?: number;
  /** Upper bound of one backoff in ms. @default 10_000 */
  maxDelayMs?: number;
  /** Decides whether an error is worth another try. @default every error */
  isRetryable?: (error: unknown) => boolean;
  /**
   * A server-requested delay for this error (for example from `Retry-After`), used instead of
   * the computed backoff when it returns a number.
   */
  delayFor?: (error: unknown) => number | undefined;
  /** Called before each backoff, for logging. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** Aborts the waiting between tries and stops retrying. */
  signal?: AbortSignal;
  /**
   * Time (epoch ms) past which no try is made: when the wait before the next one would end
   * after it, the last error is rethrown instead. @default none
   */
  deadline?: number;
}

/**
 * Computes the backoff before retry number `attempt` (1-based): full jitter over
 * `min(maxDelayMs, baseDelayMs * 2^(attempt-1))`, as the AWS architecture blog recommends,
 * so that many workers retrying at once spread out instead of stampeding.
 *
 * @example
 * ```ts
 * backoffDelayMs(3, 100, 5_000); // somewhere in [0, 400]
 * ```
 */
export function backoffDelayMs(
  attempt: number,
  baseDelayMs: number,
  maxDelayMs: number,
  random: () => number = Math.random,
): number {
  const cap = Math.min(maxDelayMs, baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(cap * random());
}

/**
 * Runs `fn` until it succeeds, the error is not retryable, the attempts are used up, or the
 * signal aborts. The last error is rethrown unchanged.
 *
 * @example
 * ```ts
 * let calls = 0;
 * const answer = await retry(() => {
 *   calls++;
 *   return calls < 2 ? Promise.reject(new Error("blip")) : Promise.resolve("ok");
 * }, { attempts: 3, baseDelayMs: 1 });
 * answer; // "ok", on the second call
 * ```
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const attempts = options.attempts ?? 5;
  const baseDelayMs = options.baseDelayMs ?? 200;
  const maxDelayMs = options.maxDelayMs ?? 10_000;
  for (let attempt = 1;; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (error) {
      if (options.signal?.aborted) throw error;
      const retryable = options.isRetryable?.(error) ?? true;
      if (!retryable || attempt >= attempts) throw error;
      const requested = options.delayFor?.(error);
      const delayMs = Math.min(
        requested ?? backoffDelayMs(attempt, baseDelayMs, maxDelayMs),
        maxDelayMs,
      );
      if (options.deadline !== undefined && Date.now() + delayMs > options.deadline) throw error;
      options.onRetry?.(error, attempt, delayMs);
      await sleep(delayMs, options.signal);
    }
  }
}

/**
 * Parses an HTTP `Retry-After` header (delta-seconds or an HTTP date) into milliseconds.
 * Returns `undefined` when absent or unparsable.
 *
 * @example
 * ```ts
 * parseRetryAfterMs("2"); // 2000
 * ```
 */
export function parseRetryAfterMs(
  value: string | null,
  now: number = Date.now(),
): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}
