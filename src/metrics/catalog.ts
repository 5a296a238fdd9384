/**
 * perago's own metrics: names, help, labels and buckets. Names carry the `perago_` prefix
 * and follow the Conductor SDKs' metric names where one exists (`task_poll_total`,
 * `task_poll_error_total`, `task_execution_started_total`, `task_execute_time_seconds`,
 * `task_poll_time_seconds`, `task_update_time_seconds`, `task_update_error_total`, with their
 * `taskType` label). Labels hold only bounded values: task types, outcomes, phases, error
 * class names; never workflow, task or attempt ids.
 *
 * @module
 */
import {
  BYTES_BUCKETS,
  type MetricSpec,
  type MetricsRegistry,
  SECONDS_BUCKETS,
} from "./registry.ts";

/** The names of perago's runtime metrics. */
export const M = Object.freeze({
  buildInfo: "perago_build_info",
  taskPoll: "perago_task_poll_total",
  taskPollTasks: "perago_task_poll_tasks_total",
  taskPollEmpty: "perago_task_poll_empty_total",
  taskPollError: "perago_task_poll_error_total",
  taskPollTime: "perago_task_poll_time_seconds",
  taskExecutionStarted: "perago_task_execution_started_total",
  attempts: "perago_attempts_total",
  taskExecuteTime: "perago_task_execute_time_seconds",
  attemptPhase: "perago_attempt_phase_seconds",
  workspaceIoBytes: "perago_workspace_io_bytes_total",
  workspaceIoObjects: "perago_workspace_io_objects_total",
  leaseExtensions: "perago_lease_extensions_total",
  taskUpdate: "perago_task_update_total",
  taskUpdateRetries: "perago_task_update_retries_total",
  taskUpdateError: "perago_task_update_error_total",
  taskUpdateTime: "perago_task_update_time_seconds",
  resultBacklog: "perago_result_backlog",
  executorRestarts: "perago_executor_restarts_total",
  executorsUp: "perago_executors_up",
  attemptsInFlight: "perago_attempts_in_flight",
  freeSlots: "perago_free_slots",
  slots: "perago_slots",
  up: "perago_up",
  ready: "perago_ready",
  taskPaused: "perago_task_paused",
});

/**
 * The outcomes an attempt is counted under: Conductor's statuses, `STALE` (the fence found a
 * newer attempt; nothing reported) and `PUBLISH_FENCE` (the branch or the attempt's scope
 * moved under it; nothing published).
 */
export type AttemptOutcomeLabel =
  | "COMPLETED"
  | "FAILED"
  | "FAILED_WITH_TERMINAL_ERROR"
  | "STALE"
  | "PUBLISH_FENCE";

/** Every runtime metric perago declares. */
export const RUNTIME_METRICS: readonly MetricSpec[] = Object.freeze(
  [
    {
      name: M.buildInfo,
      help: "Always 1; the labels tell the perago and Deno versions and the execution mode.",
      kind: "gauge",
      labelNames: ["version", "deno_version", "execution_mode"],
    },
    {
      name: M.taskPoll,
      help: "Batch polls sent to Conductor, by task type.",
      kind: "counter",
      labelNames: ["taskType"],
    },
    {
      name: M.taskPollTasks,
      help: "Tasks received from Conductor polls, by task type.",
      kind: "counter",
      labelNames: ["taskType"],
    },
    {
      name: M.taskPollEmpty,
      help: "Polls that returned no task, by task type.",
      kind: "counter",
      labelNames: ["taskType"],
    },
    {
      name: M.taskPollError,
      help: "Polls that failed, by task type and error class.",
      kind: "counter",
      labelNames: ["taskType", "exception"],
    },
    {
      name: M.taskPollTime,
      help: "Time of one poll request, by task type and status (SUCCESS or FAILURE).",
      kind: "histogram",
      labelNames: ["taskType", "status"],
      buckets: SECONDS_BUCKETS,
      unit: "s",
    },
    {
      name: M.taskExecutionStarted,
      help: "Attempts started by executors, by task type.",
      kind: "counter",
      labelNames: ["taskType"],
    },
    {
      name: M.attempts,
      help: "Attempts finished, by task type and outcome (COMPLETED, FAILED, " +
        "FAILED_WITH_TERMINAL_ERROR, STALE, PUBLISH_FENCE).",
      kind: "counter",
      labelNames: ["taskType", "outcome"],
    },
    {
      name: M.taskExecuteTime,
      help: "Duration of a whole attempt, by task type and outcome.",
      kind: "histogram",
      labelNames: ["taskType", "outcome"],
      buckets: SECONDS_BUCKETS,
      unit: "s",
    },
    {
      name: M.attemptPhase,
      help: "Duration of each phase of an attempt (download, snapshot, run, stage, publish, " +
        "cleanup), by task type.",
      kind: "histogram",
      labelNames: ["taskType", "phase"],
      buckets: SECONDS_BUCKETS,
      unit: "s",
    },
    {
      name: M.workspaceIoBytes,
      help: "Bytes moved between lakeFS and attempt directories, by task type and operation " +
        "(download, upload).",
      kind: "counter",
      labelNames: ["taskType", "operation"],
      unit: "By",
    },
    {
      name: M.workspaceIoObjects,
      help: "Objects moved between lakeFS and attempt directories, by task type and operation.",
      kind: "counter",
      labelNames: ["taskType", "operation"],
    },
    {
      name: M.leaseExtensions,
      help: "Lease extensions (heartbeats) sent, by task type and result: extended, refused " +
        "(Conductor answered with a client error), failed (network or server error).",
      kind: "counter",
      labelNames: ["taskType", "result"],
    },
    {
      name: M.taskUpdate,
      help: "Final results that left the broker, by task type, status and how: delivered, " +
        "dropped (Conductor no longer knows the task, or delivery gave up), skipped (stale).",
      kind: "counter",
      labelNames: ["taskType", "status", "how"],
    },
    {
      name: M.taskUpdateRetries,
      help: "Extra posts a result needed before Conductor took it, by task type.",
      kind: "counter",
      labelNames: ["taskType"],
    },
    {
      name: M.taskUpdateError,
      help: "Results never delivered (delivery gave up), by task type and error class.",
      kind: "counter",
      labelNames: ["taskType", "exception"],
    },
    {
      name: M.taskUpdateTime,
      help: "Time to deliver a final result, retries included, by task type and status.",
      kind: "histogram",
      labelNames: ["taskType", "status"],
      buckets: SECONDS_BUCKETS,
      unit: "s",
    },
    {
      name: M.resultBacklog,
      help: "Results handed to the broker and not yet delivered (or dropped).",
      kind: "gauge",
      labelNames: [],
    },
    {
      name: M.executorRestarts,
      help: "Executors restarted after they died.",
      kind: "counter",
      labelNames: [],
    },
    {
      name: M.executorsUp,
      help: "Executors alive and ready.",
      kind: "gauge",
      labelNames: [],
    },
    {
      name: M.attemptsInFlight,
      help: "Attempts running now, by task type.",
      kind: "gauge",
      labelNames: ["taskType"],
    },
    {
      name: M.freeSlots,
      help: "Executor slots ready for another attempt.",
      kind: "gauge",
      labelNames: [],
    },
    {
      name: M.slots,
      help: "Executor slots configured (-j).",
      kind: "gauge",
      labelNames: [],
    },
    {
      name: M.up,
      help: "1 while the supervisor and its broker are alive (what /healthz reports).",
      kind: "gauge",
      labelNames: [],
    },
    {
      name: M.ready,
      help: "1 while /readyz answers 200.",
      kind: "gauge",
      labelNames: [],
    },
    {
      name: M.taskPaused,
      help: "Per served task type: 1 when paused (PERAGO_TASK_PAUSED: never polled), 0 when " +
        "polled; the domain label is the Conductor task domain its polls carry (empty: the " +
        "default queue).",
      kind: "gauge",
      labelNames: ["taskType", "domain"],
    },
  ] satisfies MetricSpec[],
);

/** Declares every runtime metric in `registry`. */
export function defineRuntimeMetrics(registry: MetricsRegistry): void {
  for (const spec of RUNTIME_METRICS) registry.define(spec);
}

/** Names of the phases an attempt reports, in order. */
export const ATTEMPT_PHASES = [
  "download",
  "snapshot",
  "run",
  "stage",
  "publish",
  "cleanup",
] as const;

/** The byte-size histogram buckets, for task-owned histograms of sizes. */
export { BYTES_BUCKETS };
