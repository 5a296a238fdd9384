/**
 * The Conductor seam: what perago needs from a Conductor server, as an interface so
 * the broker and tests can use the HTTP client or a small in-memory implementation.
 *
 * @module
 */

/** Task statuses as Conductor reports them. */
export type TaskStatus =
  | "IN_PROGRESS"
  | "CANCELED"
  | "FAILED"
  | "FAILED_WITH_TERMINAL_ERROR"
  | "COMPLETED"
  | "COMPLETED_WITH_ERRORS"
  | "SCHEDULED"
  | "TIMED_OUT"
  | "SKIPPED";

/** Statuses a worker may report in a TaskResult. */
export type TaskResultStatus =
  | "IN_PROGRESS"
  | "COMPLETED"
  | "FAILED"
  | "FAILED_WITH_TERMINAL_ERROR";

/** The fields of a Conductor Task that perago reads. Servers send more; they are kept. */
export interface Task {
  taskType: string;
  status: TaskStatus;
  inputData: Record<string, unknown>;
  referenceTaskName: string;
  retryCount: number;
  seq: number;
  pollCount?: number;
  taskDefName: string;
  scheduledTime?: number;
  startTime?: number;
  endTime?: number;
  updateTime?: number;
  retriedTaskId?: string;
  responseTimeoutSeconds: number;
  callbackAfterSeconds?: number;
  workflowInstanceId: string;
  workflowType?: string;
  taskId: string;
  reasonForIncompletion?: string;
  workerId?: string;
  outputData?: Record<string, unknown>;
  iteration?: number;
  domain?: string;
  [extra: string]: unknown;
}

/** A TaskResult as posted to `POST /api/tasks`. */
export interface TaskResult {
  workflowInstanceId: string;
  taskId: string;
  status: TaskResultStatus;
  outputData?: Record<string, unknown>;
  reasonForIncompletion?: string;
  callbackAfterSeconds?: number;
  extendLease?: boolean;
  workerId?: string;
  logs?: { log: string; createdTime: number }[];
}

/** A Conductor TaskDef (the subset perago writes; servers echo more). */
export interface TaskDef {
  name: string;
  ownerEmail?: string;
  description?: string;
  retryCount?: number;
  retryLogic?: string;
  retryDelaySeconds?: number;
  maxRetryDelaySeconds?: number;
  backoffScaleFactor?: number;
  backoffJitterMs?: number;
  totalTimeoutSeconds?: number;
  timeoutPolicy?: string;
  timeoutSeconds?: number;
  responseTimeoutSeconds?: number;
  pollTimeoutSeconds?: number;
  concurrentExecLimit?: number;
  rateLimitPerFrequency?: number;
  rateLimitFrequencyInSeconds?: number;
  inputKeys?: string[];
  outputKeys?: string[];
  [extra: string]: unknown;
}

/**
 * One task of a WorkflowDef: a SIMPLE task (what perago workers run), or the forks that run
 * SIMPLE tasks side by side and the JOIN after them.
 *
 * @example
 * ```ts
 * const fork: WorkflowTaskDef[] = [
 *   { name: "fork", taskReferenceName: "fork", type: "FORK_JOIN", forkTasks: [
 *     [{ name: "write", taskReferenceName: "docs", type: "SIMPLE" }],
 *     [{ name: "write", taskReferenceName: "images", type: "SIMPLE" }],
 *   ] },
 *   { name: "join", taskReferenceName: "join", type: "JOIN", joinOn: ["docs", "images"] },
 * ];
 * ```
 */
export interface WorkflowTaskDef {
  name: string;
  taskReferenceName: string;
  type: "SIMPLE" | "FORK_JOIN" | "FORK_JOIN_DYNAMIC" | "JOIN";
  inputParameters?: Record<string, unknown>;
  /** FORK_JOIN: the branches, each a list of tasks run in sequence. */
  forkTasks?: WorkflowTaskDef[][];
  /** JOIN after a FORK_JOIN: the reference names it waits for (empty after a dynamic fork). */
  joinOn?: string[];
  /** FORK_JOIN_DYNAMIC: the input key holding the list of tasks to fork. */
  dynamicForkTasksParam?: string;
  /** FORK_JOIN_DYNAMIC: the input key holding each forked task's input, by reference name. */
  dynamicForkTasksInputParamName?: string;
  [extra: string]: unknown;
}

/** A WorkflowDef as `POST /api/metadata/workflow` takes it. */
export interface WorkflowDef {
  name: string;
  version?: number;
  schemaVersion?: 2;
  ownerEmail?: string;
  description?: string;
  tasks: WorkflowTaskDef[];
  outputParameters?: Record<string, unknown>;
  [extra: string]: unknown;
}

/** Workflow statuses. */
export type WorkflowStatus =
  | "RUNNING"
  | "COMPLETED"
  | "FAILED"
  | "TIMED_OUT"
  | "TERMINATED"
  | "PAUSED";

/** A workflow execution as `GET /api/workflow/{id}?includeTasks=true` returns it. */
export interface Workflow {
  workflowId: string;
  workflowName?: string;
  status: WorkflowStatus;
  input?: Record<string, unknown>;
  output?: Record<string, unknown>;
  reasonForIncompletion?: string;
  /** The task domains the workflow was started with (task type or `"*"` to domains). */
  taskToDomain?: Record<string, string>;
  tasks: Task[];
  [extra: string]: unknown;
}

/** Options of a batch poll. */
export interface PollOptions {
  count: number;
  /** Long-poll time in ms; the real server rejects more than 5000. */
  timeoutMs: number;
  workerId: string;
  domain?: string;
  signal?: AbortSignal;
}

/**
 * What perago needs from Conductor. Every method takes an optional `signal`; the HTTP
 * implementation also applies its own per-request timeout.
 */
/** Options of {@linkcode ConductorApi.startWorkflow}. */
export interface StartWorkflowOptions {
  /** Workflow version. @default the latest */
  version?: number;
  /**
   * Task type (or `"*"` for every task) to Conductor task domain(s), comma separated in
   * order of preference (`NO_DOMAIN` = the default queue): the task is handed only to polls
   * carrying that domain. Sent as a StartWorkflowRequest (`POST /api/workflow`).
   */
  taskToDomain?: Record<string, string>;
  /** Correlation id of the workflow (sent as a StartWorkflowRequest). */
  correlationId?: string;
  signal?: AbortSignal;
}

/**
 * The Conductor calls perago makes: polls, task updates (results and lease extensions), task
 * lookups (the attempt fence) and task logs, TaskDef and workflow registration, and starting
 * and reading workflows. `ConductorClient` implements it over HTTP; tests may give another.
 */
export interface ConductorApi {
  /** `GET /api/tasks/poll/batch/{taskType}`; `[]` when nothing is queued. */
  pollBatch(taskType: string, options: PollOptions): Promise<Task[]>;
  /** `POST /api/tasks`. Returns the task id the server echoes. */
  updateTask(result: TaskResult, signal?: AbortSignal): Promise<string>;
  /**
   * `POST /api/tasks/update-v2`: applies the result like {@linkcode updateTask}, then polls
   * one more task of the same type (and domain) for `result.workerId`: the next task, or
   * `undefined` when none is queued. Only for a caller with a free slot for that task. A
   * server without the endpoint gets a plain {@linkcode updateTask} (answer `undefined`).
   * Optional: a client without it is sent plain updates and polled as usual.
   */
  updateTaskV2?(result: TaskResult, signal?: AbortSignal): Promise<Task | undefined>;
  /** `GET /api/tasks/{taskId}`; throws `ConductorNotFoundError` on 404. */
  getTask(taskId: string, signal?: AbortSignal): Promise<Task>;
  /** `POST /api/tasks/{taskId}/log`. */
  addTaskLog(taskId: string, line: string, signal?: AbortSignal): Promise<void>;
  /** `GET /api/metadata/taskdefs/{name}`; `undefined` on 404. */
  getTaskDef(name: string, signal?: AbortSignal): Promise<TaskDef | undefined>;
  /** `POST /api/metadata/taskdefs` (create; may fail if present) */
  registerTaskDefs(defs: TaskDef[], signal?: AbortSignal): Promise<void>;
  /** `PUT /api/metadata/taskdefs` (upsert one). */
  updateTaskDef(def: TaskDef, signal?: AbortSignal): Promise<void>;
  /** `PUT /api/metadata/workflow` (upsert a list). */
  upsertWorkflowDefs(defs: WorkflowDef[], signal?: AbortSignal): Promise<void>;
  /** `POST /api/workflow/{name}` -> workflow id. */
  startWorkflow(
    name: string,
    input: Record<string, unknown>,
    options?: StartWorkflowOptions,
  ): Promise<string>;
  /** `GET /api/workflow/{id}?includeTasks=true`. */
  getWorkflow(workflowId: string, signal?: AbortSignal): Promise<Workflow>;
  /** `GET /health` -> true when 200. */
  health(signal?: AbortSignal): Promise<boolean>;
}
