/**
 * The HTTP plumbing the Conductor and lakeFS clients share: secrets revealed only when a
 * header is built, request URLs, a per-try timeout that can restart on progress, retries of
 * errors flagged transient (waiting the server's `Retry-After` when it gave one), JSON answers
 * checked with zod and described with a snippet of the body, and paginated listings.
 *
 * The clients keep what differs between the servers: authentication, the error classes and
 * their messages, and which calls are safe to retry.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { z } from "../vendor/zod.ts";
import { retry } from "./retry.ts";
import { checkWith } from "./quick_check.ts";

/**
 * A secret given as a plain string or as a wrapper that reveals it only when needed (such
 * as `Secret` of the configuration, which prints as `***`).
 */
export type SecretInput = string | { reveal(): string };

/**
 * The secret's value, for the one place that puts it in a header.
 *
 * @example
 * ```ts
 * revealSecret({ reveal: () => "s3cr3t" }); // "s3cr3t"
 * ```
 */
export function revealSecret(secret: SecretInput): string {
  return typeof secret === "string" ? secret : secret.reveal();
}

/**
 * The `Authorization` header of HTTP Basic auth (RFC 7617, UTF-8).
 *
 * @example
 * ```ts
 * basicAuthorization("AKIA", "s3cr3t"); // "Basic QUtJQTpzM2NyM3Q="
 * ```
 */
export function basicAuthorization(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, "utf8").toString("base64")}`;
}

/**
 * What a client's error says about retrying: `transient` (no answer, 429 or 5xx: a retry may
 * succeed) and the wait the server asked for in `Retry-After`.
 */
export interface RetryHint {
  readonly transient: boolean;
  readonly retryAfterMs?: number | undefined;
}

function hintOf(error: unknown): Partial<RetryHint> {
  return typeof error === "object" && error !== null ? error as Partial<RetryHint> : {};
}

/** Backoff of {@linkcode retryTransient}. */
export interface RetryPolicy {
  /** Tries in all, the first included. */
  readonly attempts: number;
  /** First backoff, ms; doubles each retry (full jitter). */
  readonly baseDelayMs: number;
  /** Longest backoff, and longest honoured `Retry-After`, ms. */
  readonly maxDelayMs: number;
}

/**
 * Runs `fn` (given the 1-based try number) until it succeeds or throws an error that is not
 * {@linkcode RetryHint.transient}, the tries are used up, or `signal` aborts. A transient
 * error's `retryAfterMs` replaces the backoff (capped at `maxDelayMs`).
 *
 * @example
 * ```ts
 * let tries = 0;
 * const answer = await retryTransient(() => {
 *   tries++;
 *   if (tries === 1) throw Object.assign(new Error("503"), { transient: true, retryAfterMs: 1 });
 *   return Promise.resolve("ok");
 * }, { attempts: 3, baseDelayMs: 1, maxDelayMs: 10 });
 * answer; // "ok"
 * ```
 */
export function retryTransient<T>(
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  signal?: AbortSignal,
): Promise<T> {
  return retry(fn, {
    attempts: policy.attempts,
    baseDelayMs: policy.baseDelayMs,
    maxDelayMs: policy.maxDelayMs,
    isRetryable: (error) => hintOf(error).transient === true,
    delayFor: (error) => hintOf(error).retryAfterMs,
    ...(signal === undefined ? {} : { signal }),
  });
}

/**
 * `base + path` with the query parameters set; `undefined` values are left out, and empty
 * strings too with `omitEmpty`.
 *
 * @example
 * ```ts
 * requestUrl("http://h/api", "/tasks", { count: 2, domain: undefined }).href;
 * // "http://h/api/tasks?count=2"
 * ```
 */
export function requestUrl(
  base: string,
  path: string,
  query: Readonly<Record<string, string | number | boolean | undefined>> = {},
  options: { omitEmpty?: boolean } = {},
): URL {
  // One serialisation and one parse: `url.searchParams.set` re-serialised and re-parsed the
  // URL for each parameter (a measurable part of thousands of small requests' CPU).
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || (options.omitEmpty && value === "")) continue;
    params.append(key, String(value));
  }
  const search = params.toString();
  return new URL(search === "" ? base + path : `${base}${path}?${search}`);
}

/**
 * A body for an error message: white space folded, cut at `maxLength` characters.
 *
 * @example
 * ```ts
 * snippet("<html>\n  <body>oops</body>\n</html>"); // "<html> <body>oops</body> </html>"
 * ```
 */
export function snippet(text: string, maxLength = 200): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > maxLength ? flat.slice(0, maxLength) + "…" : flat;
}

/**
 * The longest server message quoted in an error, characters: real servers' messages (a
 * Conductor validation listing every field included) stay well under it.
 */
export const MAX_SERVER_MESSAGE_LENGTH = 2000;

/** `text` with its C0 and C1 control characters but tab and line feed as U+FFFD. */
function neutralised(text: string): string {
  let out = "";
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if ((code < 32 && code !== 9 && code !== 10) || (code >= 127 && code <= 159)) {
      out += text.slice(from, i) + "\ufffd";
      from = i + 1;
    }
  }
  return from === 0 ? text : out + text.slice(from);
}

/**
 * The server's own message in an error answer: the `message` of a JSON body, else a snippet
 * of the body; `undefined` for an empty body. The server is not trusted: a JSON message is
 * cut at {@linkcode MAX_SERVER_MESSAGE_LENGTH} and its control characters other than tab and
 * line feed (terminal escapes, carriage returns) become U+FFFD, so it can neither flood a log
 * nor rewrite a terminal line.
 *
 * @example
 * ```ts
 * serverMessageOf('{"message":"branch not found"}'); // "branch not found"
 * serverMessageOf("Bad Gateway"); // "Bad Gateway"
 * serverMessageOf('{"message":"a\\u001b[2Kb"}'); // "a\ufffd[2Kb" (the escape neutralised)
 * ```
 */
export function serverMessageOf(text: string): string | undefined {
  if (text.trim() === "") return undefined;
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === "object" && typeof parsed.message === "string") {
      const message: string = parsed.message;
      return message.length > MAX_SERVER_MESSAGE_LENGTH
        ? neutralised(message.slice(0, MAX_SERVER_MESSAGE_LENGTH)) + "…"
        : neutralised(message);
    }
  } catch {
    // Not JSON: the text itself.
  }
  return snippet(text);
}

/** What {@linkcode parseJsonAnswer} found. */
export type JsonAnswer<T> =
  | { readonly ok: true; readonly data: T }
  | {
    readonly ok: false;
    /** True when the body is not JSON at all; false when JSON of the wrong shape. */
    readonly notJson: boolean;
    /** The first problem and a snippet of the body. */
    readonly detail: string;
    readonly cause: unknown;
  };

/**
 * Parses a JSON answer and checks it with `schema`. An empty body is `undefined` (for
 * schemas that allow it) with `emptyIsUndefined`, else malformed.
 *
 * @example
 * ```ts
 * import { z } from "../vendor/zod.ts";
 *
 * const answer = parseJsonAnswer('{"id": 7}', z.object({ id: z.string() }));
 * answer.ok; // false; its detail: 'id: Invalid input: expected string, received number ({"id": 7})'
 * ```
 */
export function parseJsonAnswer<S extends z.ZodType>(
  text: string,
  schema: S,
  options: { emptyIsUndefined?: boolean } = {},
): JsonAnswer<z.output<S>> {
  let value: unknown = undefined;
  if (!(options.emptyIsUndefined && text.trim() === "")) {
    try {
      value = JSON.parse(text);
    } catch (cause) {
      return { ok: false, notJson: true, detail: snippet(text), cause };
    }
  }
  const parsed = checkWith(schema as z.ZodType<z.output<S>>, value);
  if (parsed.success) return { ok: true, data: parsed.data };
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? issue.path.join(".") + ": " : "";
  return {
    ok: false,
    notJson: false,
    detail: `${where}${issue?.message ?? "invalid"} (${snippet(text)})`,
    cause: parsed.error,
  };
}

/**
 * The abort signal of one try of a request: it aborts when the caller's signal does, or when
 * `timeoutMs` pass without {@linkcode RequestTimer.restart} (progress restarts the wait, so
 * a body that keeps flowing is never cut off). {@linkcode RequestTimer.done} stops the timer
 * and the following of the caller's signal: call it once the try is over (its body read, or
 * given up).
 *
 * @example
 * ```ts
 * const timer = new RequestTimer(30_000, undefined, "lakeFS");
 * try {
 *   // await fetch(url, { signal: timer.signal }), calling timer.restart() per chunk read
 * } finally {
 *   timer.done();
 * }
 * ```
 */
export class RequestTimer {
  readonly #controller = new AbortController();
  /** Follows the caller's signal and the timeout. */
  readonly signal: AbortSignal;
  /** The longest wait without progress, ms. */
  readonly timeoutMs: number;
  readonly #server: string;
  readonly #callerSignal: AbortSignal | undefined;
  /** When the wait last started, `performance.now()`. */
  #progressAt = performance.now();
  /** Whether the timeout (not the caller) aborted the try. */
  timedOut = false;
  // The caller's signal is followed through one listener, removed when the try is done or
  // aborted: `AbortSignal.any` made a dependent signal for every try (WebIDL conversions and
  // weak references for the garbage collector), a measurable part of the CPU of thousands of
  // small requests.
  readonly #onCallerAbort = () => this.#abort(this.#callerSignal?.reason);

  /** @param server names the server in the abort reason, e.g. `"lakeFS"`. */
  constructor(timeoutMs: number, callerSignal: AbortSignal | undefined, server: string) {
    this.timeoutMs = timeoutMs;
    this.#server = server;
    this.signal = this.#controller.signal;
    this.#callerSignal = callerSignal;
    if (callerSignal?.aborted) {
      this.#controller.abort(callerSignal.reason);
      return;
    }
    callerSignal?.addEventListener("abort", this.#onCallerAbort, { once: true });
    RequestTimer.#running.add(this);
    RequestTimer.#checkBy(this.#progressAt + timeoutMs);
  }

  /**
   * Starts the wait again (progress was made). Only the time is noted: one timer for all
   * running tries finds those whose wait is over (`RequestTimer.#check`). A timer armed per
   * try and re-armed per chunk (a timer object and an async id each) was a visible part of
   * the CPU of thousands of small reads.
   */
  restart(): void {
    this.#progressAt = performance.now();
  }

  /** Stops the timer and stops following the caller's signal (the try finished, or failed). */
  done(): void {
    RequestTimer.#running.delete(this);
    if (RequestTimer.#running.size === 0 && RequestTimer.#checkAt !== undefined) {
      clearTimeout(RequestTimer.#checkAt.timer);
      RequestTimer.#checkAt = undefined;
    }
    this.#callerSignal?.removeEventListener("abort", this.#onCallerAbort);
  }

  /** The tries whose timer runs. */
  static #running = new Set<RequestTimer>();
  /** The one timer that checks them, and when it fires (`performance.now()` time). */
  static #checkAt: { timer: ReturnType<typeof setTimeout>; at: number } | undefined;

  /** Makes sure the running tries are checked by `at` at the latest. */
  static #checkBy(at: number): void {
    const current = RequestTimer.#checkAt;
    if (current !== undefined && current.at <= at) return;
    if (current !== undefined) clearTimeout(current.timer);
    const delayMs = Math.max(0, at - performance.now());
    RequestTimer.#checkAt = { timer: setTimeout(RequestTimer.#check, delayMs), at };
  }

  /** Aborts the tries whose wait is over, and waits for the next one to end. */
  static #check(): void {
    RequestTimer.#checkAt = undefined;
    const now = performance.now();
    let next = Number.POSITIVE_INFINITY;
    for (const timer of [...RequestTimer.#running]) {
      const deadline = timer.#progressAt + timer.timeoutMs;
      if (deadline <= now) {
        timer.timedOut = true;
        timer.#abort(new DOMException(`${timer.#server} request timed out`, "TimeoutError"));
      } else {
        next = Math.min(next, deadline);
      }
    }
    if (next !== Number.POSITIVE_INFINITY) RequestTimer.#checkBy(next);
  }

  #abort(reason: unknown): void {
    this.done();
    this.#controller.abort(reason);
  }
}

/** One page of a listing, as {@linkcode paginate} needs it. */
export interface Page<T> {
  readonly results: readonly T[];
  readonly hasMore: boolean;
  /** Where the next page starts. */
  readonly next: string;
}

/**
 * Walks a paginated listing from `firstAfter`: one `fetchPage` per page, the results yielded
 * in order. A page that says it has more without a new start would loop forever:
 * `loopError()` is thrown instead.
 *
 * @example
 * ```ts
 * const pages = [["a", "b"], ["c"]];
 * const all = await Array.fromAsync(paginate(
 *   (after) => {
 *     const i = after === "" ? 0 : Number(after);
 *     return Promise.resolve({ results: pages[i]!, hasMore: i + 1 < pages.length, next: `${i + 1}` });
 *   },
 *   "",
 *   () => new Error("the listing would loop"),
 * ));
 * all; // ["a", "b", "c"]
 * ```
 */
export async function* paginate<T>(
  fetchPage: (after: string) => Promise<Page<T>>,
  firstAfter: string,
  loopError: () => Error,
): AsyncGenerator<T> {
  let after = firstAfter;
  while (true) {
    const page = await fetchPage(after);
    yield* page.results;
    if (!page.hasMore) return;
    if (page.next === "" || page.next === after) throw loopError();
    after = page.next;
  }
}

/**
 * Reads a body into one array, stopping (and cancelling the body) once `limit` bytes are in;
 * `onChunk` is called per chunk (a client restarts its idle timer there).
 *
 * @example
 * ```ts
 * const body = ReadableStream.from([new Uint8Array([1, 2]), new Uint8Array([3, 4])]);
 * await readAtMost(body, 3); // Uint8Array [1, 2, 3]
 * ```
 */
export async function readAtMost(
  body: ReadableStream<Uint8Array>,
  limit: number,
  onChunk: () => void = () => {},
): Promise<Uint8Array> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    while (total < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      onChunk();
      chunks.push(value);
      total += value.length;
    }
  } catch (error) {
    await reader.cancel(error).catch(() => {});
    throw error;
  }
  if (total >= limit) await reader.cancel().catch(() => {});
  else reader.releaseLock();
  if (chunks.length === 1 && total <= limit) return chunks[0]!;
  const out = new Uint8Array(Math.min(total, limit));
  let offset = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, out.length - offset);
    out.set(part, offset);
    offset += part.length;
    if (offset === out.length) break;
  }
  return out;
}
