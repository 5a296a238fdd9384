/**
 * The `worker` options of `defineTask`: how a perago worker serves this task type on one host
 * (how many of its attempts may run at once, how it polls). Nothing here reaches the
 * Conductor TaskDef; a deployment may override the concurrency with
 * `PERAGO_TASK_CONCURRENCY_<NAME>`.
 *
 * @module
 */
import { definitionError, showValue } from "./errors.ts";
import type { CompiledWorkerOptions } from "./types.ts";

/** The `worker` of `defineTask`; every field optional. */
export interface WorkerOptions {
  /**
   * Most attempts of this task type in flight on one host, 1..1000: a heavy task at 1 while
   * lighter ones use the other `-j` slots. A value at or above `-j` changes nothing.
   * @default unset: every `-j` slot
   */
  concurrency?: number;
  /**
   * Fixed-interval polling: after a poll of this type that found fewer tasks than it asked
   * for, the next one waits this long, in ms (50..300000); polls never wait on the server.
   * @default unset: adaptive polling (long polls while idle, short batch polls while tasks
   * keep coming)
   */
  pollIntervalMs?: number;
  /**
   * Most tasks one poll of this type asks for, 1..100 (never more than free slots).
   * @default unset: as many as there are free slots
   */
  batchSize?: number;
}

/** Bounds of the `worker` options, inclusive. */
export const WORKER_OPTION_BOUNDS = Object.freeze({
  concurrency: Object.freeze({ min: 1, max: 1000 }),
  pollIntervalMs: Object.freeze({ min: 50, max: 300_000 }),
  batchSize: Object.freeze({ min: 1, max: 100 }),
});

/** No option set: every slot, adaptive polling, batches as large as the free slots. */
export const DEFAULT_WORKER_OPTIONS: CompiledWorkerOptions = Object.freeze({
  concurrency: undefined,
  pollIntervalMs: undefined,
  batchSize: undefined,
});

/**
 * Validates `input` and returns the frozen compiled form. Nothing is clamped: a value out of
 * bounds is an error.
 *
 * @param taskName named in error messages.
 * @throws {TaskDefinitionError} naming the field, e.g. `worker.concurrency`.
 * @example
 * ```ts
 * compileWorkerOptions({ concurrency: 1 }).concurrency; // 1
 * ```
 */
export function compileWorkerOptions(input: unknown, taskName?: string): CompiledWorkerOptions {
  if (input === undefined) return DEFAULT_WORKER_OPTIONS;
  const fail = (field: string, detail: string) => definitionError(taskName, field, detail);
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    throw fail(
      "worker",
      `must be an object { concurrency?, pollIntervalMs?, batchSize? }, got ${showValue(input)}`,
    );
  }
  const keys = Object.keys(WORKER_OPTION_BOUNDS);
  for (const key of Object.keys(input)) {
    if (!keys.includes(key)) {
      throw fail(`worker.${key}`, `unknown key; expected one of ${keys.join(", ")}`);
    }
  }
  const raw = input as Record<string, unknown>;
  const int = (key: keyof typeof WORKER_OPTION_BOUNDS): number | undefined => {
    const value = raw[key];
    if (value === undefined) return undefined;
    const { min, max } = WORKER_OPTION_BOUNDS[key];
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      throw fail(
        `worker.${key}`,
        `must be an integer from ${min} to ${max}, got ${showValue(value)}`,
      );
    }
    return value;
  };
  return Object.freeze({
    concurrency: int("concurrency"),
    pollIntervalMs: int("pollIntervalMs"),
    batchSize: int("batchSize"),
  });
}
