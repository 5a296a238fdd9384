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
  executorRecycles: "perago_executor_recycles_total",
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

/** A counter of `name`, by `labelNames`. */
function counter(name: string, help: string, ...labelNames: string[]): MetricSpec {
  return { name, help, kind: "counter", labelNames };
}

/** A gauge of `name`, by `labelNames`. */
function gauge(name: string, help: string, ...labelNames: string[]): MetricSpec {
  return { name, help, kind: "gauge", labelNames };
}

/** A histogram of durations in seconds (the shared second buckets), by `labelNames`. */
function seconds(name: string, help: string, ...labelNames: string[]): MetricSpec {
  return { name, help, kind: "histogram", labelNames, buckets: SECONDS_BUCKETS, unit: "s" };
}

/** Every runtime metric perago declares. */
export const RUNTIME_METRICS: readonly MetricSpec[] = Object.freeze([
  gauge(
    M.buildInfo,
    "Always 1; the labels tell the perago and Deno versions and the execution mode.",
    "version",
    "deno_version",
    "execution_mode",
  ),
  counter(M.taskPoll, "Batch polls sent to Conductor, by task type.", "taskType"),
  counter(M.taskPollTasks, "Tasks received from Conductor polls, by task type.", "taskType"),
  counter(M.taskPollEmpty, "Polls that returned no task, by task type.", "taskType"),
  counter(
    M.taskPollError,
    "Polls that failed, by task type and error class.",
    "taskType",
    "exception",
  ),
  seconds(
    M.taskPollTime,
    "Time of one poll request, by task type and status (SUCCESS or FAILURE).",
    "taskType",
    "status",
  ),
  counter(M.taskExecutionStarted, "Attempts started by executors, by task type.", "taskType"),
  counter(
    M.attempts,
    "Attempts finished, by task type and outcome (COMPLETED, FAILED, " +
      "FAILED_WITH_TERMINAL_ERROR, STALE, PUBLISH_FENCE).",
    "taskType",
    "outcome",
  ),
  seconds(
    M.taskExecuteTime,
    "Duration of a whole attempt, by task type and outcome.",
    "taskType",
    "outcome",
  ),
  seconds(
    M.attemptPhase,
    "Duration of each phase of an attempt (download, snapshot, run, stage, publish, " +
      "cleanup), by task type.",
    "taskType",
    "phase",
  ),
  {
    ...counter(
      M.workspaceIoBytes,
      "Bytes moved between lakeFS and attempt directories, by task type and operation " +
        "(download, upload).",
      "taskType",
      "operation",
    ),
    unit: "By",
  },
  counter(
    M.workspaceIoObjects,
    "Objects moved between lakeFS and attempt directories, by task type and operation.",
    "taskType",
    "operation",
  ),
  counter(
    M.leaseExtensions,
    "Lease extensions (heartbeats) sent, by task type and result: extended, refused " +
      "(Conductor answered with a client error), failed (network or server error).",
    "taskType",
    "result",
  ),
  counter(
    M.taskUpdate,
    "Final results that left the broker, by task type, status and how: delivered, " +
      "dropped (Conductor no longer knows the task, or delivery gave up), skipped (stale).",
    "taskType",
    "status",
    "how",
  ),
  counter(
    M.taskUpdateRetries,
    "Extra posts a result needed before Conductor took it, by task type.",
    "taskType",
  ),
  counter(
    M.taskUpdateError,
    "Results never delivered (delivery gave up), by task type and error class.",
    "taskType",
    "exception",
  ),
  seconds(
    M.taskUpdateTime,
    "Time to deliver a final result, retries included, by task type and status.",
    "taskType",
    "status",
  ),
  gauge(M.resultBacklog, "Results handed to the broker and not yet delivered (or dropped)."),
  counter(M.executorRestarts, "Executors restarted after they died."),
  counter(
    M.executorRecycles,
    "Executors replaced on purpose after their attempt's directory went to the warm pool (not failures).",
  ),
  gauge(M.executorsUp, "Executors alive and ready."),
  gauge(M.attemptsInFlight, "Attempts running now, by task type.", "taskType"),
  gauge(M.freeSlots, "Executor slots ready for another attempt."),
  gauge(M.slots, "Executor slots configured (-j)."),
  gauge(M.up, "1 while the supervisor and its broker are alive (what /healthz reports)."),
  gauge(M.ready, "1 while /readyz answers 200."),
  gauge(
    M.taskPaused,
    "Per served task type: 1 when paused (PERAGO_TASK_PAUSED: never polled), 0 when " +
      "polled; the domain label is the Conductor task domain its polls carry (empty: the " +
      "default queue).",
    "taskType",
    "domain",
  ),
]);

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
