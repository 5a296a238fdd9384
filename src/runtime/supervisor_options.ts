/**
 * The supervisor's options in stages: {@linkcode SupervisorOptions} as callers write them
 * (every field documented with its default), and {@linkcode compileSupervisorOptions}, which
 * fills the defaults and checks them into a frozen {@linkcode CompiledSupervisorOptions}.
 * A bad value throws a `RangeError` when the supervisor is made, before any child is spawned
 * or lock taken, and nothing is silently clamped. supervisor.ts re-exports every one.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import type { ChildHandle } from "./_child.ts";
import type { StagingBranchRef } from "./gc.ts";
import type {
  BrokerInit,
  ExecutorInit,
  FromBroker,
  FromExecutor,
  ToBroker,
  ToExecutor,
} from "./protocol.ts";
import type { SupervisorTelemetry } from "./telemetry.ts";

/** Spawns a child for a role (the seam tests and thread mode replace). */
export interface ChildSpawner {
  broker(): ChildHandle<FromBroker, ToBroker>;
  executor(slot: number): ChildHandle<FromExecutor, ToExecutor>;
}

/** Options of {@linkcode Supervisor}. */
export interface SupervisorOptions {
  /** Number of executor processes (`-j`). */
  concurrency: number;
  workspaceRoot: string;
  /** `PERAGO_WORKSPACE_GC_TTL`. */
  workspaceGcTtlMs: number;
  /** `PERAGO_WORKSPACE_GC_INTERVAL`. */
  workspaceGcIntervalMs: number;
  /** `PERAGO_SHUTDOWN_FORCE_KILL_AFTER`; `undefined` waits for the drain. */
  shutdownForceKillAfterMs: number | undefined;
  /** The broker's init message. */
  brokerInit: BrokerInit;
  /** The init message of the executor in `slot`. */
  executorInit: (slot: number) => ExecutorInit;
  spawner: ChildSpawner;
  /**
   * Thread mode: the children are Workers in this process, so every attempt dir's owner pid
   * is this process's. Periodic sweeps then keep this process's dirs (their owner tokens live
   * in the workers), and a dead executor's dirs are found by its worker id instead of its pid.
   * @default false
   */
  childrenInProcess?: boolean;
  /** Executor restart delays, ms; the last repeats. @default 1,2,4,8,16,30 s */
  restartBackoffMs?: readonly number[];
  /** An executor up this long resets its backoff. @default 60000 */
  stableAfterMs?: number;
  /** How long children get to start (init to ready). @default 60000 */
  startTimeoutMs?: number;
  /** After a forced stop, how long the broker gets to deliver abandon results. @default 10000 */
  forcedBrokerGraceMs?: number;
  /**
   * The time budget of one attempt of a task type (its `controls.timeout.seconds`, in ms), or
   * `undefined`/0 for none. Past the budget the executor aborts the attempt's signal; a task
   * that ignores the signal (or blocks its event loop) would hold the slot, and its extended
   * lease, forever, so the supervisor kills an executor still in the attempt
   * {@linkcode attemptKillGraceMs} later (the task is then reported FAILED and retried).
   */
  attemptBudgetMs?: (taskType: string) => number | undefined;
  /**
   * Grace after an attempt's budget before its executor is killed.
   * @default the budget itself, at least 5 s and at most 30 s
   */
  attemptKillGraceMs?: number;
  /** Receives metrics and health events (the `/metrics` and `/readyz` listener reads it). */
  telemetry?: SupervisorTelemetry;
  /**
   * Deletes a lakeFS staging branch that the marker of a collected attempt dir names: its
   * executor died before its own cleanup, and a retry that would delete it may never come
   * (the workflow failed or was cancelled meanwhile). Best effort; a failure is logged.
   * Without it such branches are left to the next attempt of the same task.
   */
  deleteStagingBranch?: (ref: StagingBranchRef) => Promise<void>;
  /**
   * Executor lanes (lane_router.ts): the Unix socket of each slot, by slot index, on which the
   * broker listens. Set: each executor gets its lane's id and a fresh secret in its init and
   * exchanges attempts and outcomes with the broker directly; the supervisor opens and closes
   * the lanes, watches the attempts the broker reports, and grants no credits. The broker's
   * init must name the same paths.
   */
  lanePaths?: readonly string[];
  /**
   * The V8 heap limit executor processes run with (`PERAGO_EXECUTOR_MAX_HEAP_MB`), named in
   * the failure reason of an executor that died of a fatal V8 error. 0: none.
   */
  executorMaxHeapMb?: number;
  logger?: Logger;
}

const DEFAULT_BACKOFF_MS = [1_000, 2_000, 4_000, 8_000, 16_000, 30_000] as const;

/**
 * {@linkcode SupervisorOptions} with every default filled in, checked and frozen: what the
 * supervisor reads (the kill grace after an attempt's budget stays optional: its default
 * depends on each budget).
 */
export type CompiledSupervisorOptions = Readonly<
  & Omit<
    SupervisorOptions,
    | "childrenInProcess"
    | "restartBackoffMs"
    | "stableAfterMs"
    | "startTimeoutMs"
    | "forcedBrokerGraceMs"
  >
  & {
    childrenInProcess: boolean;
    restartBackoffMs: readonly number[];
    stableAfterMs: number;
    startTimeoutMs: number;
    forcedBrokerGraceMs: number;
  }
>;

/**
 * Fills the defaults of {@linkcode SupervisorOptions} and checks them; nothing is clamped.
 *
 * @throws {RangeError} for a concurrency that is not a positive integer, an empty or negative
 *   restart backoff, or a negative duration.
 * @example
 * ```ts
 * import type { BrokerInit, ExecutorInit } from "./protocol.ts";
 *
 * const unused = () => {
 *   throw new Error("no child is spawned in this example");
 * };
 * const compiled = compileSupervisorOptions({
 *   concurrency: 2, workspaceRoot: "/var/lib/perago/ws", workspaceGcTtlMs: 86_400_000,
 *   workspaceGcIntervalMs: 3_600_000, shutdownForceKillAfterMs: undefined,
 *   brokerInit: {} as BrokerInit, executorInit: () => ({}) as ExecutorInit,
 *   spawner: { broker: unused, executor: unused },
 * });
 * compiled.restartBackoffMs; // [1000, 2000, 4000, 8000, 16000, 30000]
 * ```
 */
export function compileSupervisorOptions(options: SupervisorOptions): CompiledSupervisorOptions {
  if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
    throw new RangeError(`Supervisor: concurrency must be a positive integer`);
  }
  const backoff = options.restartBackoffMs ?? DEFAULT_BACKOFF_MS;
  if (backoff.length === 0 || !backoff.every((ms) => ms >= 0)) {
    throw new RangeError(
      `Supervisor: restartBackoffMs must be a non-empty list of delays >= 0 (got [${backoff}])`,
    );
  }
  const duration = (name: string, value: number | undefined, fallback: number): number => {
    const ms = value ?? fallback;
    if (!(ms >= 0)) throw new RangeError(`Supervisor: ${name} must be >= 0 (got ${ms})`);
    return ms;
  };
  return Object.freeze({
    ...options,
    childrenInProcess: options.childrenInProcess ?? false,
    restartBackoffMs: Object.freeze([...backoff]),
    stableAfterMs: duration("stableAfterMs", options.stableAfterMs, 60_000),
    startTimeoutMs: duration("startTimeoutMs", options.startTimeoutMs, 60_000),
    forcedBrokerGraceMs: duration("forcedBrokerGraceMs", options.forcedBrokerGraceMs, 10_000),
  });
}
