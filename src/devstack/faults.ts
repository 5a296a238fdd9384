/**
 * Fault injection for the demo servers, switchable while they run (over HTTP at
 * `/_perago/faults` or in-process through {@linkcode FaultInjector.set}). Used by the
 * reliability tests: added latency, 5xx, 429 with Retry-After, dropped connections, pause.
 *
 * @module
 */

/** The switches. Rates are probabilities in [0, 1]. */
export interface FaultSettings {
  /** Added to every request before it is handled. @default 0 */
  latencyMs: number;
  /** Share of requests answered 503 `{"message": "injected fault"}`. @default 0 */
  errorRate: number;
  /** Status used for injected errors. @default 503 */
  errorStatus: number;
  /** Share of requests answered 429 with `Retry-After`. @default 0 */
  tooManyRate: number;
  /** `Retry-After` seconds sent with injected 429s. @default 1 */
  retryAfterSeconds: number;
  /** Share of requests whose connection is dropped without an answer. @default 0 */
  dropRate: number;
  /** While true, requests wait (without an answer) until unpaused. @default false */
  paused: boolean;
  /** Only requests whose path contains this string are affected. @default "" (all) */
  pathFilter: string;
}

/** Settings with everything off. */
export const NO_FAULTS: Readonly<FaultSettings> = Object.freeze({
  latencyMs: 0,
  errorRate: 0,
  errorStatus: 503,
  tooManyRate: 0,
  retryAfterSeconds: 1,
  dropRate: 0,
  paused: false,
  pathFilter: "",
});

/** Path of the admin endpoint every demo server mounts. */
export const FAULTS_PATH = "/_perago/faults";

/** Thrown (and turned into a dropped connection by the server wrapper) to drop a request. */
export class DroppedConnection extends Error {
  override name = "DroppedConnection";
}

/**
 * Holds the current fault settings and applies them to requests.
 *
 * @example
 * ```ts
 * const faults = new FaultInjector();
 * faults.set({ errorRate: 0.3 });
 * const handler = faults.wrap((req) => new Response("ok"));
 * ```
 */
export class FaultInjector {
  #settings: FaultSettings = { ...NO_FAULTS };
  #resumeWaiters: (() => void)[] = [];
  #random: () => number;
  /** Counts of injected faults, for assertions. */
  readonly injected = { errors: 0, tooMany: 0, dropped: 0, delayed: 0 };

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  /** The current settings (a copy). */
  get settings(): FaultSettings {
    return { ...this.#settings };
  }

  /** Changes some switches; unspecified ones keep their value. Validates ranges. */
  set(changes: Partial<FaultSettings>): void {
    const next = { ...this.#settings, ...changes };
    for (const key of ["errorRate", "tooManyRate", "dropRate"] as const) {
      const value = next[key];
      if (typeof value !== "number" || !(value >= 0 && value <= 1)) {
        throw new RangeError(`faults: ${key} must be a number in [0, 1], got ${value}`);
      }
    }
    for (const key of ["latencyMs", "retryAfterSeconds"] as const) {
      const value = next[key];
      if (typeof value !== "number" || !(value >= 0)) {
        throw new RangeError(`faults: ${key} must be a non-negative number, got ${value}`);
      }
    }
    if (!(next.errorStatus >= 500 && next.errorStatus <= 599)) {
      throw new RangeError(`faults: errorStatus must be a 5xx status, got ${next.errorStatus}`);
    }
    if (typeof next.paused !== "boolean") throw new RangeError("faults: paused must be boolean");
    if (typeof next.pathFilter !== "string") {
      throw new RangeError("faults: pathFilter must be a string");
    }
    this.#settings = next;
    if (!next.paused) this.#resume();
  }

  /** Turns every fault off and releases paused requests. */
  reset(): void {
    this.set({ ...NO_FAULTS });
  }

  #resume(): void {
    const waiters = this.#resumeWaiters;
    this.#resumeWaiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Applies the faults to one request. Returns a Response to send instead of handling it,
   * `undefined` to handle it normally, or throws {@linkcode DroppedConnection}.
   */
  async apply(request: Request): Promise<Response | undefined> {
    const url = new URL(request.url);
    if (url.pathname === FAULTS_PATH) return undefined;
    const s = this.#settings;
    if (s.pathFilter !== "" && !url.pathname.includes(s.pathFilter)) return undefined;
    while (this.#settings.paused) {
      await new Promise<void>((resolve) => this.#resumeWaiters.push(resolve));
    }
    if (s.latencyMs > 0) {
      this.injected.delayed++;
      await new Promise((resolve) => setTimeout(resolve, s.latencyMs));
    }
    if (s.dropRate > 0 && this.#random() < s.dropRate) {
      this.injected.dropped++;
      throw new DroppedConnection("injected dropped connection");
    }
    if (s.tooManyRate > 0 && this.#random() < s.tooManyRate) {
      this.injected.tooMany++;
      return Response.json({ message: "Too many attempts" }, {
        status: 429,
        headers: { "retry-after": String(s.retryAfterSeconds) },
      });
    }
    if (s.errorRate > 0 && this.#random() < s.errorRate) {
      this.injected.errors++;
      return Response.json({ message: "injected fault" }, { status: s.errorStatus });
    }
    return undefined;
  }

  /** Handles `GET`/`PUT`/`DELETE` on {@linkcode FAULTS_PATH}; `undefined` for other paths. */
  async handleAdmin(request: Request): Promise<Response | undefined> {
    if (new URL(request.url).pathname !== FAULTS_PATH) return undefined;
    if (request.method === "GET") return Response.json(this.settings);
    if (request.method === "DELETE") {
      this.reset();
      return Response.json(this.settings);
    }
    if (request.method === "PUT" || request.method === "POST") {
      try {
        const changes = await request.json();
        if (typeof changes !== "object" || changes === null || Array.isArray(changes)) {
          throw new RangeError("faults: body must be a JSON object");
        }
        const known = new Set(Object.keys(NO_FAULTS));
        for (const key of Object.keys(changes)) {
          if (!known.has(key)) throw new RangeError(`faults: unknown switch ${key}`);
        }
        this.set(changes as Partial<FaultSettings>);
        return Response.json(this.settings);
      } catch (error) {
        return Response.json({ message: (error as Error).message }, { status: 400 });
      }
    }
    return Response.json({ message: "method not allowed" }, { status: 405 });
  }

  /**
   * Wraps a request handler with the admin endpoint and the faults. A dropped connection is
   * simulated by answering with an aborted body stream, which makes the client see a
   * connection error instead of an HTTP status.
   */
  wrap(
    handler: (request: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response>,
  ): (request: Request, info: Deno.ServeHandlerInfo) => Promise<Response> {
    return async (request, info) => {
      const admin = await this.handleAdmin(request);
      if (admin) return admin;
      try {
        const injected = await this.apply(request);
        if (injected) return injected;
      } catch (error) {
        if (!(error instanceof DroppedConnection)) throw error;
        // A body that errors makes Deno reset the connection mid-response: the client sees
        // a network error, as with a server that died.
        return new Response(
          new ReadableStream({
            start(controller) {
              controller.error(error);
            },
          }),
          { status: 200 },
        );
      }
      return await handler(request, info);
    };
  }
}
