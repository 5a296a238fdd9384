/**
 * The `worker` options of `defineTask`: how a perago worker serves this task type on one host
 * (how many of its attempts may run at once, how it polls). Nothing here reaches the
 * Conductor TaskDef; a deployment may override the concurrency with
 * `PERAGO_TASK_CONCURRENCY_<NAME>`.
 *
 * @module
 */
import { buildOnce } from "../util/lazy.ts";
import { intIn, parseDefinition, strictSection } from "./_definition_schema.ts";
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

// Built on first use, not when the module loads (see controls.ts): a task without worker
// options never parses any.
const workerSchemaOnce = buildOnce(() => {
  const bounded = (key: keyof typeof WORKER_OPTION_BOUNDS) =>
    intIn(WORKER_OPTION_BOUNDS[key].min, WORKER_OPTION_BOUNDS[key].max).optional();

  const workerSchema = strictSection({
    concurrency: bounded("concurrency"),
    pollIntervalMs: bounded("pollIntervalMs"),
    batchSize: bounded("batchSize"),
  }, {
    notObject: (shown) =>
      `must be an object { concurrency?, pollIntervalMs?, batchSize? }, got ${shown}`,
    unknownKey: `unknown key; expected one of ${Object.keys(WORKER_OPTION_BOUNDS).join(", ")}`,
  });
  return workerSchema;
});

/**
 * Validates `input` and returns the frozen compiled form. Nothing is clamped: a value out of
 * bounds is an error. Of several bad fields, the first in the order of
 * {@linkcode WorkerOptions} is reported (an unknown key before any value).
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
  const options = parseDefinition(workerSchemaOnce(), input, {
    taskName,
    field: "worker",
    rank: ({ path }) => [path.length === 0 ? 0 : 1],
  });
  return Object.freeze({
    concurrency: options.concurrency,
    pollIntervalMs: options.pollIntervalMs,
    batchSize: options.batchSize,
  });
}
