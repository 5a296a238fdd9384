/**
 * The executor's garbage collection while it waits for work. Loading the task modules (and
 * later running attempts) leaves V8's young generation grown and garbage in the old one; V8
 * would shrink them only once its memory reducer starts, about 30 s after start-up, so an
 * idle executor process holds about 5 MiB more than it needs. An executor process is started
 * with V8's gc function exposed under a private global name ({@linkcode EXECUTOR_GC_FLAG});
 * {@linkcode takeExposedGc} takes it off the global object before any task code loads, and
 * {@linkcode IdleCollector} runs one memory-reducing collection once the executor has been
 * idle for a while (never while an attempt runs).
 *
 * A thread-mode executor (a Worker) has no such global: it shares its process and its heap
 * settings with the supervisor, and collects nothing itself.
 *
 * @module
 */

/** The global V8 exposes its gc function under in executor processes. */
export const EXECUTOR_GC_GLOBAL = "__peragoExecutorGc";

/** The V8 flag of executor processes that exposes it (`--expose-gc-as`). */
export const EXECUTOR_GC_FLAG = `--expose-gc-as=${EXECUTOR_GC_GLOBAL}`;

/** A full garbage collection that also gives memory back to the system. */
export type CollectGarbage = () => void;

type GcFunction = (options?: { type: string; execution: string; flavor: string }) => unknown;

/**
 * Takes the gc function that {@linkcode EXECUTOR_GC_FLAG} exposed off the global object (the
 * property stays, set to `undefined`: V8 makes it non-configurable), so task code cannot call
 * it; `undefined` when the flag was not given (thread mode, tests).
 */
export function takeExposedGc(
  global: Record<string, unknown> = globalThis as unknown as Record<string, unknown>,
): CollectGarbage | undefined {
  const gc = global[EXECUTOR_GC_GLOBAL];
  if (typeof gc !== "function") return undefined;
  global[EXECUTOR_GC_GLOBAL] = undefined;
  // "last-resort" is V8's memory-reducing collection: it also shrinks the young generation
  // and returns freed pages, which a regular full collection keeps (measured: an idle
  // executor's heap 16 -> 9.4 MiB and its RSS -5 MiB in about 15 ms).
  return () => void (gc as GcFunction)({ type: "major", execution: "sync", flavor: "last-resort" });
}

/** Options of {@linkcode IdleCollector}. */
export interface IdleCollectorOptions {
  collect: CollectGarbage;
  /** Idle time before the collection, ms. @default 1000 */
  delayMs?: number;
}

/**
 * Runs `collect` once after each stretch of `delayMs` without work: {@linkcode idle} arms it,
 * {@linkcode busy} disarms it. The collection pauses the executor for about 15 ms, so it waits
 * until a next attempt is unlikely to be held up by it; a busy executor never collects.
 *
 * @example
 * ```ts
 * let collections = 0;
 * const collector = new IdleCollector({ collect: () => collections++, delayMs: 10 });
 * collector.idle(); // collects in 10 ms unless busy() comes first
 * collector.busy();
 * collector.stop();
 * ```
 */
export class IdleCollector {
  readonly #collect: CollectGarbage;
  readonly #delayMs: number;
  /**
   * One timer at a time, re-armed when it fires early: an executor goes busy and idle once
   * per attempt, and setting and clearing a timer each time cost more than the check.
   */
  #timer: ReturnType<typeof setTimeout> | undefined;
  #busy = false;
  #stopped = false;
  /** When the current idle stretch began (`performance.now()`). */
  #idleSince = 0;

  constructor(options: IdleCollectorOptions) {
    this.#collect = options.collect;
    this.#delayMs = options.delayMs ?? 1000;
  }

  /** Work ended: collect after `delayMs` unless work comes first. */
  idle(): void {
    if (this.#stopped) return;
    this.#busy = false;
    this.#idleSince = performance.now();
    if (this.#timer === undefined) this.#arm(this.#delayMs);
  }

  /** Work started: no collection until the next {@linkcode idle}. */
  busy(): void {
    this.#busy = true;
  }

  /** No more collections. */
  stop(): void {
    this.#stopped = true;
    this.#busy = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(ms: number): void {
    const timer = setTimeout(() => this.#fire(), ms);
    // The process lives as long as its channel; this timer alone never keeps it up.
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  #fire(): void {
    this.#timer = undefined;
    if (this.#busy || this.#stopped) return; // the next idle() arms it again
    const waited = performance.now() - this.#idleSince;
    if (waited + 1 < this.#delayMs) this.#arm(this.#delayMs - waited);
    else this.#collect();
  }
}
