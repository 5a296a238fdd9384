/**
 * The demo Conductor's state machine, independent of HTTP: metadata, workflows of SIMPLE
 * tasks in sequence and in static (FORK_JOIN) or dynamic (FORK_JOIN_DYNAMIC) forks with their
 * JOINs, task queues, polls, task updates, retries and the response-timeout sweep, following
 * Conductor OSS 3.21. It imports nothing from the perago client so that a bug on one side does
 * not hide the same bug on the other.
 *
 * @module
 */
import { resolveParams } from "./_expr.ts";
import { ConductorHttpError, isObject, type Json, num } from "./_common.ts";
import {
  evaluateJoin,
  readDynamicFork,
  SUCCESSFUL_TASK,
  TERMINAL_TASK,
  WorkflowDefinitionFailure,
} from "./_fork.ts";
import { checkTaskDef, checkTaskResult, checkWorkflowDef } from "./_validate.ts";

export { ConductorHttpError, type Json };

/** Task types the engine runs itself; they are never queued for workers. */
const SYSTEM_TASK_TYPES = new Set(["FORK", "JOIN"]);
const TERMINAL_WORKFLOW = new Set(["COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED"]);
/** What an unregistered task type gets (Conductor's default TaskDef). */
export const DEFAULT_TASK_DEF: Readonly<Json> = Object.freeze({
  retryCount: 3,
  retryLogic: "FIXED",
  retryDelaySeconds: 60,
  backoffScaleFactor: 1,
  timeoutPolicy: "TIME_OUT_WF",
  timeoutSeconds: 0,
  responseTimeoutSeconds: 3600,
  pollTimeoutSeconds: 0,
  totalTimeoutSeconds: 0,
  rateLimitPerFrequency: 0,
  rateLimitFrequencyInSeconds: 1,
  inputKeys: [],
  outputKeys: [],
  inputTemplate: {},
});

/** One queued message: a task waiting to be polled. */
export interface QueueEntry {
  taskId: string;
  /** Epoch ms when it becomes visible. */
  deliverAt: number;
  /** Insertion order, for FIFO among equal times. */
  order: number;
}

/** The whole persisted state. */
export interface EngineState {
  taskDefs: Record<string, Json>;
  /** name -> version (as string) -> def. */
  workflowDefs: Record<string, Record<string, Json>>;
  workflows: Record<string, Json & { taskIds: string[] }>;
  tasks: Record<string, Json>;
  /** queue name (`[domain:]taskType`) -> entries. */
  queues: Record<string, QueueEntry[]>;
  /** queue name (`[domain:]taskType`) -> epoch ms of its last poll (Conductor's poll data). */
  lastPolls?: Record<string, number>;
  logs: Record<string, Json[]>;
  order: number;
}

/** A new, empty state. */
export function emptyState(): EngineState {
  return {
    taskDefs: {},
    workflowDefs: {},
    workflows: {},
    tasks: {},
    queues: {},
    lastPolls: {},
    logs: {},
    order: 0,
  };
}

/**
 * How long after its last poll a domain counts as active when a task is scheduled (Conductor's
 * `conductor.app.activeWorkerLastPollTimeout`, 10 s by default).
 */
export const ACTIVE_WORKER_LAST_POLL_MS = 10_000;

/** A copy without top-level null fields: Conductor's JSON omits them (nested nulls stay). */
function view(value: Json): Json {
  const out: Json = {};
  for (const [key, item] of Object.entries(value)) {
    if (item !== null && item !== undefined) out[key] = structuredClone(item);
  }
  return out;
}

/** The entry of `queue` to hand out first at `now`: visible, earliest deliverAt, then order. */
function firstVisible(queue: readonly QueueEntry[], now: number): QueueEntry | undefined {
  let best: QueueEntry | undefined;
  for (const entry of queue) {
    if (entry.deliverAt > now) continue;
    if (
      best === undefined || entry.deliverAt < best.deliverAt ||
      (entry.deliverAt === best.deliverAt && entry.order < best.order)
    ) best = entry;
  }
  return best;
}

function queueName(taskType: string, domain: unknown): string {
  return typeof domain === "string" && domain !== "" ? `${domain}:${taskType}` : taskType;
}

/** The workflow task of a reference name anywhere in a def's task tree (fork branches too). */
function findWorkflowTask(tasks: Json[], ref: string): Json | undefined {
  for (const task of tasks) {
    if (task.taskReferenceName === ref) return task;
    for (const branch of (task.forkTasks as Json[][] | undefined) ?? []) {
      const found = findWorkflowTask(branch, ref);
      if (found) return found;
    }
  }
  return undefined;
}

/**
 * Adds a failed task's reference and TaskDef names to the workflow's `failedReferenceTaskNames`
 * and `failedTaskNames`: sets in Conductor, so each name is listed once.
 */
function noteFailedTask(workflow: Json, task: Json): void {
  for (
    const [key, name] of [
      ["failedReferenceTaskNames", task.referenceTaskName],
      ["failedTaskNames", task.taskDefName],
    ] as const
  ) {
    const names = (workflow[key] as unknown[] | undefined) ?? [];
    if (!names.includes(name)) names.push(name);
    workflow[key] = names;
  }
}

/** How Conductor names a workflow in its messages: `name.version/id`, `.status` with `withStatus`. */
function describeWorkflow(workflow: Json, withStatus: boolean): string {
  const base = `${workflow.workflowName}.${workflow.workflowVersion}/${workflow.workflowId}`;
  return withStatus ? `${base}.${workflow.status}` : base;
}

/**
 * The engine. Every public method mutates the state synchronously and calls `onChange` (for
 * persistence) and `onEnqueue` (to wake long polls) as needed.
 */
export class ConductorEngine {
  /** Everything the server knows (what `dataDir` persists). */
  state: EngineState;
  readonly #now: () => number;
  /** Called after every mutation. */
  onChange: () => void = () => {};
  /** Called when a task becomes visible (or will at `deliverAt`) in a queue. */
  onEnqueue: (queue: string, deliverAt: number) => void = () => {};

  constructor(state: EngineState = emptyState(), now: () => number = Date.now) {
    this.state = state;
    this.#now = now;
  }

  /** The engine's clock, epoch ms. */
  now(): number {
    return this.#now();
  }

  // ---------------------------------------------------------------- metadata

  /** `POST /api/metadata/taskdefs`: creates or replaces each def. */
  registerTaskDefs(body: unknown): void {
    if (!Array.isArray(body)) {
      throw new ConductorHttpError(500, "JSON parse error: task definitions must be a JSON list");
    }
    const defs = body.map((def, i) => checkTaskDef(def, `registerTaskDef.arg0[${i}]`));
    for (const def of defs) {
      const existing = this.state.taskDefs[def.name as string];
      this.state.taskDefs[def.name as string] = {
        ...DEFAULT_TASK_DEF,
        ...def,
        createTime: existing?.createTime ?? this.now(),
        updateTime: existing ? this.now() : 0,
      };
    }
    this.onChange();
  }

  /** `PUT /api/metadata/taskdefs`: replaces one existing def (404 when missing). */
  updateTaskDef(body: unknown): void {
    const def = checkTaskDef(body, "updateTaskDef.arg0");
    const existing = this.state.taskDefs[def.name as string];
    if (!existing) throw new ConductorHttpError(404, `No such task by name ${def.name}`);
    this.state.taskDefs[def.name as string] = {
      ...DEFAULT_TASK_DEF,
      ...def,
      createTime: existing.createTime,
      updateTime: this.now(),
    };
    this.onChange();
  }

  /** `GET /api/metadata/taskdefs/{name}`. */
  getTaskDef(name: string): Json {
    const def = this.state.taskDefs[name];
    if (!def) throw new ConductorHttpError(404, `No such taskType found by name: ${name}`);
    return def;
  }

  /** `DELETE /api/metadata/taskdefs/{name}` (a missing one is a 500, as on Conductor OSS). */
  deleteTaskDef(name: string): void {
    if (!this.state.taskDefs[name]) {
      throw new ConductorHttpError(500, "No such task definition");
    }
    delete this.state.taskDefs[name];
    this.onChange();
  }

  /**
   * `POST /api/metadata/workflow`: refused when that name+version exists, with the 500 Conductor
   * OSS 3.21.14 answers (its conflict is not mapped to a 409).
   */
  createWorkflowDef(body: unknown): void {
    const def = checkWorkflowDef(body);
    const versions = this.state.workflowDefs[def.name] ??= {};
    if (versions[String(def.version)]) {
      throw new ConductorHttpError(500, `Workflow with ${def.name}.${def.version} already exists!`);
    }
    versions[String(def.version)] = { ...def, createTime: this.now(), updateTime: 0 };
    this.onChange();
  }

  /** `PUT /api/metadata/workflow`: upserts a list; answers a BulkResponse. */
  upsertWorkflowDefs(body: unknown): Json {
    if (!Array.isArray(body)) {
      throw new ConductorHttpError(
        500,
        "JSON parse error: workflow definitions must be a JSON list",
      );
    }
    const defs = body.map((def, i) => checkWorkflowDef(def, `updateWorkflowDef.arg0[${i}]`));
    for (const def of defs) {
      const versions = this.state.workflowDefs[def.name] ??= {};
      const existing = versions[String(def.version)];
      versions[String(def.version)] = {
        ...def,
        createTime: existing?.createTime ?? this.now(),
        updateTime: existing ? this.now() : 0,
      };
    }
    this.onChange();
    return { bulkErrorResults: {}, bulkSuccessfulResults: defs.map((d) => d.name) };
  }

  /** `GET /api/metadata/workflow/{name}?version=`: the given or latest version. */
  getWorkflowDef(name: string, version?: number): Json {
    const versions = this.state.workflowDefs[name];
    let def: Json | undefined;
    if (versions) {
      if (version !== undefined) def = versions[String(version)];
      else {
        const latest = Math.max(...Object.keys(versions).map(Number));
        def = versions[String(latest)];
      }
    }
    if (!def) {
      throw new ConductorHttpError(
        404,
        `No such workflow found by name: ${name}, version: ${version ?? null}`,
      );
    }
    return def;
  }

  /** `DELETE /api/metadata/workflow/{name}/{version}`. */
  deleteWorkflowDef(name: string, version: number): void {
    const versions = this.state.workflowDefs[name];
    if (!versions?.[String(version)]) {
      throw new ConductorHttpError(
        404,
        `No such workflow definition: ${name} version: ${version}`,
      );
    }
    delete versions[String(version)];
    if (Object.keys(versions).length === 0) delete this.state.workflowDefs[name];
    this.onChange();
  }

  /** Ids of the RUNNING workflows of a name. */
  runningWorkflowIds(name: string): string[] {
    return Object.values(this.state.workflows)
      .filter((w) => w.workflowName === name && w.status === "RUNNING")
      .map((w) => w.workflowId as string);
  }

  /** All workflow defs (every version). */
  listWorkflowDefs(): Json[] {
    return Object.values(this.state.workflowDefs).flatMap((versions) => Object.values(versions));
  }

  // ---------------------------------------------------------------- workflows

  /** Starts a workflow; returns its id. */
  startWorkflow(request: {
    name: string;
    version?: number | undefined;
    input: unknown;
    correlationId?: string | undefined;
    taskToDomain?: unknown;
    priority?: number | undefined;
  }): string {
    if (request.input !== undefined && request.input !== null && !isObject(request.input)) {
      throw new ConductorHttpError(500, "JSON parse error: workflow input must be a JSON object");
    }
    const def = this.getWorkflowDef(request.name, request.version);
    const now = this.now();
    const workflowId = crypto.randomUUID();
    const workflow = {
      ownerApp: "",
      createTime: now,
      updateTime: now,
      status: "RUNNING",
      endTime: 0,
      workflowId,
      tasks: [],
      taskIds: [] as string[],
      input: structuredClone((request.input as Json | null) ?? {}),
      output: {},
      correlationId: request.correlationId ?? null,
      reasonForIncompletion: null,
      taskToDomain: isObject(request.taskToDomain) ? request.taskToDomain : {},
      failedReferenceTaskNames: [],
      failedTaskNames: [],
      workflowDefinition: def,
      priority: request.priority ?? 0,
      variables: {},
      lastRetriedTime: 0,
      history: [],
      startTime: now,
      workflowName: def.name,
      workflowVersion: def.version,
      rateLimited: false,
    };
    this.state.workflows[workflowId] = workflow;
    try {
      this.#decide(workflowId);
    } catch (error) {
      // As on the real server, a start whose first decision fails leaves nothing behind.
      for (const id of workflow.taskIds) {
        const task = this.state.tasks[id];
        if (task) this.#dequeue(task);
        delete this.state.tasks[id];
      }
      delete this.state.workflows[workflowId];
      throw error;
    }
    this.onChange();
    return workflowId;
  }

  /** The workflow as the API shows it, tasks included or not. */
  getWorkflow(workflowId: string, includeTasks = true): Json {
    const workflow = this.#workflow(workflowId);
    const { taskIds, ...rest } = workflow;
    return {
      ...view(rest),
      tasks: includeTasks
        ? taskIds.map((id) => this.state.tasks[id]).filter((t): t is Json => !!t).map(view)
        : [],
    };
  }

  /** Terminates a running workflow: running tasks are CANCELED. */
  terminateWorkflow(workflowId: string, reason: string | undefined): void {
    const workflow = this.#workflow(workflowId);
    if (TERMINAL_WORKFLOW.has(workflow.status as string)) {
      throw new ConductorHttpError(
        409,
        `Workflow is in terminal state. Status = ${workflow.status}`,
      );
    }
    this.#finishWorkflow(workflow, "TERMINATED", reason ?? null);
    this.onChange();
  }

  /** `PUT /api/workflow/{id}/pause`: a running workflow schedules nothing more until resumed. */
  pauseWorkflow(workflowId: string): void {
    const workflow = this.#workflow(workflowId);
    if (TERMINAL_WORKFLOW.has(workflow.status as string)) {
      throw new ConductorHttpError(
        409,
        `Workflow ${describeWorkflow(workflow, false)} has ended, status cannot be updated.`,
      );
    }
    if (workflow.status === "PAUSED") return;
    workflow.status = "PAUSED";
    workflow.updateTime = this.now();
    this.onChange();
  }

  /** `PUT /api/workflow/{id}/resume`: a paused workflow runs on (a 500 for any other status). */
  resumeWorkflow(workflowId: string): void {
    const workflow = this.#workflow(workflowId);
    if (workflow.status !== "PAUSED") {
      throw new ConductorHttpError(
        500,
        `The workflow ${workflowId} is not PAUSED so cannot resume. Current status is ${workflow.status}`,
      );
    }
    workflow.status = "RUNNING";
    workflow.updateTime = this.now();
    this.#decide(workflowId);
    this.onChange();
  }

  /**
   * `POST /api/workflow/{id}/retry`: an ended workflow runs again from its unsuccessful tasks
   * (each reference's latest FAILED, FAILED_WITH_TERMINAL_ERROR, TIMED_OUT or CANCELED task is
   * rescheduled as a retry with retryCount + 1; a CANCELED JOIN waits again).
   */
  retryWorkflow(workflowId: string): void {
    const workflow = this.#workflow(workflowId);
    const status = workflow.status as string;
    if (!TERMINAL_WORKFLOW.has(status)) {
      throw new ConductorHttpError(404, `Workflow is still running.  status=${status}`);
    }
    const retriable = new Map<string, Json>();
    const joins: Json[] = [];
    for (const id of workflow.taskIds) {
      const task = this.state.tasks[id];
      if (!task) continue;
      const ref = task.referenceTaskName as string;
      switch (task.status) {
        case "FAILED":
        case "FAILED_WITH_TERMINAL_ERROR":
        case "TIMED_OUT":
          retriable.set(ref, task);
          break;
        case "CANCELED":
          if (task.taskType === "JOIN") joins.push(task);
          else retriable.set(ref, task);
          break;
        default:
          retriable.delete(ref);
      }
    }
    if (retriable.size === 0 && status !== "TIMED_OUT") {
      throw new ConductorHttpError(
        409,
        "There are no retryable tasks! Use restart if you want to attempt entire workflow " +
          "execution again.",
      );
    }
    const now = this.now();
    workflow.status = "RUNNING";
    workflow.reasonForIncompletion = null;
    workflow.endTime = 0;
    workflow.lastRetriedTime = now;
    workflow.updateTime = now;
    for (const join of joins) {
      join.status = "IN_PROGRESS";
      join.endTime = 0;
      join.updateTime = now;
    }
    const def = workflow.workflowDefinition as Json;
    const ordered = [...retriable.values()].sort((a, b) => num(a.seq, 0) - num(b.seq, 0));
    for (const task of ordered) {
      task.retried = true;
      const workflowTask = findWorkflowTask(
        (def.tasks as Json[]) ?? [],
        task.referenceTaskName as string,
      );
      this.#scheduleTask(workflow, workflowTask ?? (task.workflowTask as Json), task, 0);
    }
    this.#decide(workflowId);
    this.onChange();
  }

  /**
   * `POST /api/workflow/{id}/restart`: an ended workflow starts over under the same id, its
   * tasks dropped (a 409 while it runs).
   */
  restartWorkflow(workflowId: string): void {
    const workflow = this.#workflow(workflowId);
    if (!TERMINAL_WORKFLOW.has(workflow.status as string)) {
      throw new ConductorHttpError(
        409,
        `Workflow: ${
          describeWorkflow(workflow, true)
        } is not in terminal state, unable to restart.`,
      );
    }
    for (const id of workflow.taskIds) {
      const task = this.state.tasks[id];
      if (task) this.#dequeue(task);
      delete this.state.tasks[id];
      delete this.state.logs[id];
    }
    const now = this.now();
    workflow.taskIds = [];
    workflow.status = "RUNNING";
    workflow.reasonForIncompletion = null;
    workflow.output = {};
    workflow.createTime = now;
    workflow.updateTime = now;
    workflow.endTime = 0;
    workflow.lastRetriedTime = 0;
    this.#decide(workflowId);
    this.onChange();
  }

  /**
   * `DELETE /api/workflow/{id}/remove`: deletes a workflow and its tasks. With `archive` (the
   * server's default) a workflow that is not terminal is still deleted but answered with a 400,
   * as Conductor OSS does (it removes the workflow before it refuses to archive it).
   */
  removeWorkflow(workflowId: string, archive = true): void {
    const workflow = this.#workflow(workflowId);
    const status = workflow.status as string;
    for (const id of workflow.taskIds) {
      const task = this.state.tasks[id];
      if (task) this.#dequeue(task);
      delete this.state.tasks[id];
      delete this.state.logs[id];
    }
    delete this.state.workflows[workflowId];
    this.onChange();
    if (archive && !TERMINAL_WORKFLOW.has(status)) {
      throw new ConductorHttpError(
        400,
        `Cannot archive workflow: ${workflowId} with status: ${status}`,
      );
    }
  }

  #workflow(workflowId: string): Json & { taskIds: string[] } {
    const workflow = this.state.workflows[workflowId];
    if (!workflow) throw new ConductorHttpError(404, `No such workflow found by id: ${workflowId}`);
    return workflow;
  }

  #taskDefFor(name: string): Json {
    return { ...DEFAULT_TASK_DEF, name, ...(this.state.taskDefs[name] ?? {}) };
  }

  #exprContext(workflow: Json & { taskIds: string[] }): {
    workflow: Json;
    tasks: Record<string, Json>;
  } {
    const tasks: Record<string, Json> = {};
    for (const id of workflow.taskIds) {
      const task = this.state.tasks[id];
      if (!task) continue;
      tasks[task.referenceTaskName as string] = {
        input: task.inputData,
        output: task.outputData,
        status: task.status,
        taskId: task.taskId,
        referenceTaskName: task.referenceTaskName,
        retryCount: task.retryCount,
        workerId: task.workerId,
        reasonForIncompletion: task.reasonForIncompletion,
      };
    }
    return {
      workflow: {
        input: workflow.input,
        output: workflow.output,
        status: workflow.status,
        workflowId: workflow.workflowId,
        workflowType: workflow.workflowName,
        version: workflow.workflowVersion,
        correlationId: workflow.correlationId,
        variables: workflow.variables,
      },
      tasks,
    };
  }

  #scheduleTask(
    workflow: Json & { taskIds: string[] },
    workflowTask: Json,
    retryOf?: Json,
    delayMs = 0,
    extraInput?: Json,
  ): Json {
    const now = this.now();
    const taskDef = this.#taskDefFor(workflowTask.name as string);
    let inputData: Json;
    if (retryOf) {
      inputData = structuredClone(retryOf.inputData as Json);
    } else {
      inputData = resolveParams(
        workflowTask.inputParameters ?? {},
        this.#exprContext(workflow),
      ) as Json;
      for (const [key, value] of Object.entries((taskDef.inputTemplate as Json) ?? {})) {
        if (!(key in inputData)) inputData[key] = structuredClone(value);
      }
      // A dynamically forked task: its entry of the fork's input map wins.
      if (extraInput) Object.assign(inputData, structuredClone(extraInput));
    }
    const domain = this.#activeDomain(
      workflowTask.name as string,
      (workflow.taskToDomain ?? {}) as Json,
    );
    const task: Json = {
      taskType: workflowTask.name,
      status: "SCHEDULED",
      inputData,
      referenceTaskName: workflowTask.taskReferenceName,
      retryCount: retryOf ? num(retryOf.retryCount, 0) + 1 : 0,
      seq: workflow.taskIds.length + 1,
      correlationId: workflow.correlationId ?? null,
      pollCount: 0,
      taskDefName: workflowTask.name,
      scheduledTime: now,
      startTime: 0,
      endTime: 0,
      updateTime: now,
      startDelayInSeconds: Math.round(delayMs / 1000),
      retried: false,
      executed: false,
      callbackFromWorker: true,
      responseTimeoutSeconds: num(taskDef.responseTimeoutSeconds, 3600),
      workflowInstanceId: workflow.workflowId,
      workflowType: workflow.workflowName,
      taskId: crypto.randomUUID(),
      // A retry waits out its delay like a callback (as Conductor records it).
      callbackAfterSeconds: Math.round(delayMs / 1000),
      workerId: null,
      outputData: {},
      workflowTask: { ...workflowTask, taskDefinition: taskDef },
      domain,
      rateLimitPerFrequency: num(taskDef.rateLimitPerFrequency, 0),
      rateLimitFrequencyInSeconds: num(taskDef.rateLimitFrequencyInSeconds, 1),
      workflowPriority: workflow.priority ?? 0,
      iteration: 0,
      subworkflowChanged: false,
      firstStartTime: 0,
      taskDefinition: taskDef,
      queueWaitTime: 0,
      loopOverTask: false,
    };
    if (retryOf) task.retriedTaskId = retryOf.taskId;
    this.state.tasks[task.taskId as string] = task;
    workflow.taskIds.push(task.taskId as string);
    this.#enqueue(task, now + delayMs);
    return task;
  }

  #enqueue(task: Json, deliverAt: number): void {
    const name = queueName(task.taskType as string, task.domain);
    const queue = this.state.queues[name] ??= [];
    const existing = queue.findIndex((e) => e.taskId === task.taskId);
    if (existing >= 0) queue.splice(existing, 1);
    queue.push({ taskId: task.taskId as string, deliverAt, order: ++this.state.order });
    this.onEnqueue(name, deliverAt);
  }

  #dequeue(task: Json): void {
    const name = queueName(task.taskType as string, task.domain);
    const queue = this.state.queues[name];
    if (!queue) return;
    const index = queue.findIndex((e) => e.taskId === task.taskId);
    if (index >= 0) queue.splice(index, 1);
    if (queue.length === 0) delete this.state.queues[name];
  }

  #retryDelayMs(taskDef: Json, retryCount: number): number {
    const delay = num(taskDef.retryDelaySeconds, 60);
    let seconds: number;
    switch (taskDef.retryLogic) {
      case "LINEAR_BACKOFF":
        seconds = delay * num(taskDef.backoffScaleFactor, 1) * (retryCount + 1);
        break;
      case "EXPONENTIAL_BACKOFF":
        seconds = delay * 2 ** retryCount;
        break;
      default:
        seconds = delay;
    }
    // Conductor OSS 3.21 has no maxRetryDelaySeconds (it drops the field): no cap here.
    return Math.max(0, seconds) * 1000;
  }

  /**
   * Moves the workflow forward after a task changed (the decider). A PAUSED workflow stands
   * still: its scheduled tasks can be polled and updated, nothing new is scheduled until resume.
   */
  #decide(workflowId: string): void {
    const workflow = this.state.workflows[workflowId];
    if (!workflow || TERMINAL_WORKFLOW.has(workflow.status as string)) return;
    if (workflow.status === "PAUSED") return;
    const def = workflow.workflowDefinition as Json;
    for (const task of this.#latestByRef(workflow).values()) {
      const status = task.status as string;
      if (status === "FAILED_WITH_TERMINAL_ERROR") {
        this.#failWorkflow(workflow, task);
        return;
      }
      if ((status === "FAILED" || status === "TIMED_OUT") && !task.retried) {
        const taskDef = this.#taskDefFor(task.taskDefName as string);
        const retryCount = num(task.retryCount, 0);
        // FORK and JOIN have no TaskDef and are never retried: a failed JOIN fails the workflow.
        if (
          !SYSTEM_TASK_TYPES.has(task.taskType as string) &&
          retryCount < num(taskDef.retryCount, 3)
        ) {
          task.retried = true;
          // Conductor names a failed task among the workflow's failed ones even when a retry
          // then succeeds.
          noteFailedTask(workflow, task);
          const workflowTask = findWorkflowTask(
            (def.tasks as Json[]) ?? [],
            task.referenceTaskName as string,
          );
          this.#scheduleTask(
            workflow,
            workflowTask ?? (task.workflowTask as Json),
            task,
            this.#retryDelayMs(taskDef, retryCount),
          );
        } else {
          this.#failWorkflow(workflow, task);
          return;
        }
      }
    }
    const latest = this.#latestByRef(workflow);
    let done: boolean;
    try {
      done = this.#advance(workflow, (def.tasks as Json[]) ?? [], latest);
    } catch (error) {
      if (!(error instanceof WorkflowDefinitionFailure)) throw error;
      this.#finishWorkflow(workflow, "FAILED", error.message);
      return;
    }
    // Done when the top-level list is done and nothing anywhere still runs (a forked task
    // no JOIN waits on, for one).
    if (
      done &&
      workflow.taskIds.every((id) => TERMINAL_TASK.has(this.state.tasks[id]?.status as string))
    ) {
      this.#finishWorkflow(workflow, "COMPLETED", null);
    }
  }

  /** The latest task of each reference name (a retry replaces the task it retries). */
  #latestByRef(workflow: Json & { taskIds: string[] }): Map<string, Json> {
    const latest = new Map<string, Json>();
    for (const id of workflow.taskIds) {
      const task = this.state.tasks[id];
      if (task) latest.set(task.referenceTaskName as string, task);
    }
    return latest;
  }

  /**
   * Walks one list of workflow tasks (the workflow's, or one fork branch) in order, scheduling
   * the first task not yet there and evaluating JOINs; true when every task of the list has
   * ended successfully. A fork's branches are walked where the fork stands; the JOIN after it
   * holds the list until the tasks it waits on are done.
   */
  #advance(
    workflow: Json & { taskIds: string[] },
    list: Json[],
    latest: Map<string, Json>,
  ): boolean {
    for (const [index, workflowTask] of list.entries()) {
      const ref = workflowTask.taskReferenceName as string;
      const type = (workflowTask.type as string | undefined) ?? "SIMPLE";
      let task = latest.get(ref);
      if (type === "FORK_JOIN" || type === "FORK_JOIN_DYNAMIC") {
        if (!task) this.#fork(workflow, workflowTask, list[index + 1], latest);
        else if (type === "FORK_JOIN") {
          for (const branch of workflowTask.forkTasks as Json[][]) {
            this.#advance(workflow, branch, latest);
          }
        }
        continue;
      }
      if (type === "JOIN") {
        task ??= this.#addSystemTask(workflow, workflowTask, "JOIN", "IN_PROGRESS", {
          joinOn: structuredClone(workflowTask.joinOn ?? []),
        }, latest);
        if (task.status === "IN_PROGRESS") this.#evaluateJoin(task, latest);
      } else if (!task) {
        latest.set(ref, this.#scheduleTask(workflow, workflowTask));
        workflow.updateTime = this.now();
        return false;
      }
      if (!SUCCESSFUL_TASK.has(task.status as string)) return false;
    }
    return true;
  }

  /**
   * Starts a fork as Conductor's mappers do: a FORK task (COMPLETED at once; a dynamic fork's
   * input also lists `forkedTasks` and `forkedTaskDefs`), the first task of every branch (of a
   * dynamic fork: every listed task, its input its own inputParameters with the map entry of
   * its reference name merged over them), then the JOIN that must follow, IN_PROGRESS, whose
   * input `joinOn` is the def's list for a static fork and the forked references for a
   * dynamic one. Nothing is scheduled when the def or the dynamic input is wrong.
   */
  #fork(
    workflow: Json & { taskIds: string[] },
    forkTask: Json,
    next: Json | undefined,
    latest: Map<string, Json>,
  ): void {
    const dynamic = forkTask.type === "FORK_JOIN_DYNAMIC";
    const input = resolveParams(
      forkTask.inputParameters ?? {},
      this.#exprContext(workflow),
    ) as Json;
    const forked = dynamic ? readDynamicFork(forkTask, input) : undefined;
    if (next?.type !== "JOIN") {
      throw new WorkflowDefinitionFailure(
        dynamic
          ? "Dynamic join definition is not followed by a join task.  Check the workflow definition."
          : "Fork task definition is not followed by a join task.  Check the blueprint",
      );
    }
    const branches = (forkTask.forkTasks as Json[][] | undefined) ?? [];
    if (!dynamic && branches.some((branch) => branch.length === 0)) {
      // Conductor's mapper reads the first task of each branch and answers this 500.
      throw new ConductorHttpError(500, "Index 0 out of bounds for length 0");
    }
    if (forked) {
      const existing = forked.tasks.find((t) => latest.has(t.taskReferenceName as string));
      if (existing) {
        throw new WorkflowDefinitionFailure(
          `No dynamic tasks could be created for the Workflow: ${workflow.workflowName}.${workflow.workflowVersion}/${workflow.workflowId}, Dynamic Fork Task: ${existing.name}/${existing.taskReferenceName} attempted to create a duplicate task reference name: ${existing.taskReferenceName}`,
        );
      }
      input.forkedTasks = forked.tasks.map((t) => t.taskReferenceName);
      input.forkedTaskDefs = forked.tasks.map((t) => ({
        ...t,
        taskDefinition: this.#taskDefFor(t.name as string),
      }));
    }
    this.#addSystemTask(workflow, forkTask, "FORK", "COMPLETED", input, latest);
    let joinOn: string[];
    if (forked) {
      joinOn = [];
      for (const task of forked.tasks) {
        const ref = task.taskReferenceName as string;
        joinOn.push(ref);
        // A reference listed twice is scheduled once (and waited on twice), as in Conductor.
        if (latest.has(ref)) continue;
        latest.set(ref, this.#scheduleTask(workflow, task, undefined, 0, forked.inputs[ref]));
      }
    } else {
      for (const branch of branches) this.#advance(workflow, branch, latest);
      joinOn = structuredClone((next.joinOn as string[] | undefined) ?? []);
    }
    this.#addSystemTask(workflow, next, "JOIN", "IN_PROGRESS", { joinOn }, latest);
    workflow.updateTime = this.now();
  }

  /** Completes or fails an IN_PROGRESS JOIN when the tasks it waits on allow it. */
  #evaluateJoin(join: Json, latest: Map<string, Json>): void {
    const joinOn = ((join.inputData as Json).joinOn as string[] | undefined) ?? [];
    const outcome = evaluateJoin(joinOn, latest);
    join.outputData = outcome.output;
    if (!outcome.status) return;
    const now = this.now();
    join.status = outcome.status;
    if (outcome.reason !== undefined) join.reasonForIncompletion = outcome.reason;
    join.endTime = now;
    join.updateTime = now;
  }

  /** Adds a FORK or JOIN task: run by the engine, never queued, no TaskDef. */
  #addSystemTask(
    workflow: Json & { taskIds: string[] },
    workflowTask: Json,
    taskType: "FORK" | "JOIN",
    status: "COMPLETED" | "IN_PROGRESS",
    inputData: Json,
    latest: Map<string, Json>,
  ): Json {
    const now = this.now();
    const task: Json = {
      taskType,
      status,
      inputData,
      referenceTaskName: workflowTask.taskReferenceName,
      retryCount: 0,
      seq: workflow.taskIds.length + 1,
      correlationId: workflow.correlationId ?? null,
      pollCount: 0,
      taskDefName: taskType,
      scheduledTime: now,
      startTime: now,
      endTime: status === "COMPLETED" ? now : 0,
      updateTime: now,
      startDelayInSeconds: 0,
      retried: false,
      executed: false,
      callbackFromWorker: true,
      responseTimeoutSeconds: 0,
      workflowInstanceId: workflow.workflowId,
      workflowType: workflow.workflowName,
      taskId: crypto.randomUUID(),
      callbackAfterSeconds: 0,
      outputData: {},
      workflowTask: structuredClone(workflowTask),
      rateLimitPerFrequency: 0,
      rateLimitFrequencyInSeconds: 0,
      workflowPriority: workflow.priority ?? 0,
      iteration: 0,
      subworkflowChanged: false,
      firstStartTime: 0,
      queueWaitTime: 0,
      loopOverTask: false,
    };
    this.state.tasks[task.taskId as string] = task;
    workflow.taskIds.push(task.taskId as string);
    latest.set(workflowTask.taskReferenceName as string, task);
    return task;
  }

  #failWorkflow(workflow: Json & { taskIds: string[] }, task: Json): void {
    // As Conductor's decider: a task that timed out for good times the workflow out, and the
    // reason names the workflow's status (FAILED for a FAILED_WITH_TERMINAL_ERROR task too).
    const status = task.status === "TIMED_OUT" ? "TIMED_OUT" : "FAILED";
    const reason = `Task ${task.taskId} failed with status: ${status} and reason: '${
      task.reasonForIncompletion ?? null
    }'`;
    noteFailedTask(workflow, task);
    this.#finishWorkflow(workflow, status, reason);
  }

  #finishWorkflow(
    workflow: Json & { taskIds: string[] },
    status: string,
    reason: string | null,
  ): void {
    const now = this.now();
    for (const id of workflow.taskIds) {
      const task = this.state.tasks[id];
      if (!task) continue;
      if (!TERMINAL_TASK.has(task.status as string)) {
        task.status = "CANCELED";
        task.endTime = now;
        task.updateTime = now;
      }
      this.#dequeue(task);
    }
    workflow.status = status;
    workflow.reasonForIncompletion = reason;
    workflow.endTime = now;
    workflow.updateTime = now;
    workflow.output = this.#workflowOutput(workflow);
  }

  #workflowOutput(workflow: Json & { taskIds: string[] }): Json {
    const def = workflow.workflowDefinition as Json;
    const params = def.outputParameters as Json | undefined;
    if (params && Object.keys(params).length > 0) {
      return resolveParams(params, this.#exprContext(workflow)) as Json;
    }
    const lastId = workflow.taskIds[workflow.taskIds.length - 1];
    const last = lastId ? this.state.tasks[lastId] : undefined;
    return structuredClone((last?.outputData as Json) ?? {});
  }

  // ---------------------------------------------------------------- tasks

  /**
   * The domain a task of `taskType` is queued in, as Conductor's `setTaskDomains` decides it:
   * `taskToDomain["*"]`, when present, applies to every task, else `taskToDomain[taskType]`;
   * the value lists domains separated by commas, and the first one polled for `taskType`
   * within {@linkcode ACTIVE_WORKER_LAST_POLL_MS} wins; with none active, the last one (or no
   * domain when the last is `NO_DOMAIN`). `null` = the default queue.
   */
  #activeDomain(taskType: string, taskToDomain: Json): string | null {
    const value = taskToDomain["*"] ?? taskToDomain[taskType];
    if (typeof value !== "string") return null;
    const domains = value.split(",").map((domain) => domain.trim());
    const now = this.now();
    const active = domains.find((domain) =>
      domain.toUpperCase() !== "NO_DOMAIN" &&
      now - (this.state.lastPolls?.[queueName(taskType, domain)] ?? -Infinity) <
        ACTIVE_WORKER_LAST_POLL_MS
    );
    if (active !== undefined) return active;
    const last = domains[domains.length - 1] ?? "";
    return last === "" || last.toUpperCase() === "NO_DOMAIN" ? null : last;
  }

  /** Pops up to `count` visible tasks of `taskType` (and domain) and marks them polled. */
  poll(taskType: string, count: number, workerId: string | null, domain: string | null): Json[] {
    const name = queueName(taskType, domain);
    (this.state.lastPolls ??= {})[name] = this.now();
    const queue = this.state.queues[name];
    if (!queue || count < 1) return [];
    const now = this.now();
    const out: Json[] = [];
    while (out.length < count) {
      // The first visible entry (by deliverAt, then order): a scan, not a sort of the whole
      // queue per poll (thousands of queued tasks made each poll cost a millisecond).
      const entry = firstVisible(queue, now);
      if (entry === undefined) break;
      const task = this.state.tasks[entry.taskId];
      if (!task || TERMINAL_TASK.has(task.status as string)) {
        // Stale message (task finished or gone): drop it.
        queue.splice(queue.indexOf(entry), 1);
        continue;
      }
      const workflow = this.state.workflows[task.workflowInstanceId as string];
      if (!workflow || TERMINAL_WORKFLOW.has(workflow.status as string)) {
        queue.splice(queue.indexOf(entry), 1);
        continue;
      }
      const limit = num(this.#taskDefFor(task.taskDefName as string).concurrentExecLimit, 0);
      if (limit > 0 && this.#inProgressCount(task.taskDefName as string) >= limit) break;
      queue.splice(queue.indexOf(entry), 1);
      task.status = "IN_PROGRESS";
      task.workerId = workerId;
      task.pollCount = num(task.pollCount, 0) + 1;
      if (!task.startTime) task.startTime = now;
      task.updateTime = now;
      task.queueWaitTime = now - num(task.scheduledTime, now);
      task.callbackAfterSeconds = 0;
      out.push(task);
    }
    if (queue.length === 0) delete this.state.queues[name];
    if (out.length > 0) this.onChange();
    return out.map(view);
  }

  #inProgressCount(taskDefName: string): number {
    let n = 0;
    for (const task of Object.values(this.state.tasks)) {
      if (task.taskDefName === taskDefName && task.status === "IN_PROGRESS") n++;
    }
    return n;
  }

  /** Epoch ms of the next message of a queue that is not visible yet, if any. */
  nextDelivery(taskType: string, domain: string | null): number | undefined {
    const queue = this.state.queues[queueName(taskType, domain)];
    if (!queue || queue.length === 0) return undefined;
    return Math.min(...queue.map((e) => e.deliverAt));
  }

  /** `GET /api/tasks/{taskId}`; `undefined` for an unknown id (an empty 204, as Conductor OSS). */
  getTask(taskId: string): Json | undefined {
    const task = this.state.tasks[taskId];
    return task ? view(task) : undefined;
  }

  /** `POST /api/tasks`: applies a TaskResult; returns the task (for update-v2). */
  updateTask(body: unknown): Json {
    const result = checkTaskResult(body);
    const workflow = this.#workflow(result.workflowInstanceId as string);
    const task = this.state.tasks[result.taskId as string];
    if (!task || task.workflowInstanceId !== workflow.workflowId) {
      throw new ConductorHttpError(404, `No such task found by id: ${result.taskId}`);
    }
    const now = this.now();
    this.#appendLogs(task.taskId as string, result.logs);
    if (
      TERMINAL_WORKFLOW.has(workflow.status as string) || TERMINAL_TASK.has(task.status as string)
    ) {
      // Already finished: the update is a no-op (Conductor logs an "update conflict").
      this.#dequeue(task);
      this.onChange();
      return task;
    }
    const status = result.status as string;
    if (status === "IN_PROGRESS" && result.extendLease === true) {
      // The heartbeat: only the lease moves (a SCHEDULED task also turns IN_PROGRESS, as on
      // the real server; its queue message stays, so it can still be polled).
      task.status = "IN_PROGRESS";
      task.updateTime = now;
      this.onChange();
      return task;
    }
    task.outputData = structuredClone((result.outputData as Json | null) ?? {});
    task.reasonForIncompletion = result.reasonForIncompletion ?? null;
    task.workerId = result.workerId ?? null;
    task.callbackAfterSeconds = num(result.callbackAfterSeconds, 0);
    task.updateTime = now;
    if (status === "IN_PROGRESS") {
      // Not a heartbeat: back to the queue, visible after callbackAfterSeconds.
      task.status = "SCHEDULED";
      this.#enqueue(task, now + num(task.callbackAfterSeconds, 0) * 1000);
    } else {
      task.status = status;
      task.endTime = now;
      this.#dequeue(task);
      this.#decide(workflow.workflowId as string);
    }
    workflow.updateTime = now;
    this.onChange();
    return task;
  }

  /** `POST /api/tasks/{workflowId}/{taskRefName}/{status}`: update by reference name. */
  updateTaskByRef(
    workflowId: string,
    refName: string,
    status: string,
    output: unknown,
    workerId: string | null,
  ): string {
    const workflow = this.#workflow(workflowId);
    let task: Json | undefined;
    for (const id of workflow.taskIds) {
      const candidate = this.state.tasks[id];
      if (candidate?.referenceTaskName === refName) task = candidate;
    }
    if (!task) {
      throw new ConductorHttpError(
        404,
        `No such task found with taskRefName: ${refName} in workflow: ${workflowId}`,
      );
    }
    this.updateTask({
      workflowInstanceId: workflowId,
      taskId: task.taskId,
      status,
      outputData: output ?? {},
      ...(workerId ? { workerId } : {}),
    });
    return task.taskId as string;
  }

  #appendLogs(taskId: string, logs: unknown): void {
    if (!Array.isArray(logs)) return;
    for (const entry of logs) {
      if (isObject(entry) && typeof entry.log === "string") {
        (this.state.logs[taskId] ??= []).push({
          log: entry.log,
          taskId,
          createdTime: num(entry.createdTime, this.now()),
        });
      }
    }
  }

  /**
   * `POST /api/tasks/{taskId}/log`. A line for an unknown task is dropped with a 200, as
   * Conductor OSS (which hands logs to its index without looking the task up) answers.
   */
  addLog(taskId: string, line: string): void {
    if (!this.state.tasks[taskId]) return;
    (this.state.logs[taskId] ??= []).push({ log: line, taskId, createdTime: this.now() });
    this.onChange();
  }

  /** `GET /api/tasks/{taskId}/log`. */
  getLogs(taskId: string): Json[] {
    return structuredClone(this.state.logs[taskId] ?? []);
  }

  /** Queue sizes per task type (visible or not). */
  queueSizes(taskTypes: string[]): Json {
    const out: Json = {};
    for (const type of taskTypes) out[type] = this.state.queues[type]?.length ?? 0;
    return out;
  }

  /**
   * The response-timeout sweep: an IN_PROGRESS task silent for
   * `responseTimeoutSeconds + callbackAfterSeconds` becomes TIMED_OUT and is retried like a
   * FAILED task, whatever the timeout policy. Returns how many tasks timed out.
   */
  sweep(): number {
    const now = this.now();
    let timedOut = 0;
    for (const workflow of Object.values(this.state.workflows)) {
      if (TERMINAL_WORKFLOW.has(workflow.status as string)) continue;
      let changed = false;
      for (const id of workflow.taskIds) {
        const task = this.state.tasks[id];
        if (!task || task.status !== "IN_PROGRESS") continue;
        // The task's own timeout (timeoutSeconds since it started), by its timeoutPolicy.
        const taskDef = (task.taskDefinition as Json | undefined) ?? {};
        const timeoutS = num(taskDef.timeoutSeconds, 0);
        const elapsedMs = now - num(task.startTime, now) -
          num(task.startDelayInSeconds, 0) * 1000;
        if (timeoutS > 0 && elapsedMs >= timeoutS * 1000) {
          const policy = (taskDef.timeoutPolicy as string | undefined) ?? "TIME_OUT_WF";
          const reason = `Task timed out after ${
            Math.floor(elapsedMs / 1000)
          } seconds. Timeout configured as ${timeoutS} seconds. Timeout policy configured to ${policy}`;
          if (policy === "RETRY" || policy === "TIME_OUT_WF") {
            task.status = "TIMED_OUT";
            task.reasonForIncompletion = reason;
            task.endTime = now;
            task.updateTime = now;
            timedOut++;
            changed = true;
            if (policy === "TIME_OUT_WF") {
              noteFailedTask(workflow, task);
              this.#finishWorkflow(workflow, "TIMED_OUT", reason);
              changed = false;
              break;
            }
            continue;
          }
          // ALERT_ONLY: Conductor only counts it.
        }
        const limitS = num(task.responseTimeoutSeconds, 0);
        if (limitS <= 0) continue;
        const waitedMs = now - num(task.updateTime, now);
        if (waitedMs >= (limitS + num(task.callbackAfterSeconds, 0)) * 1000) {
          task.status = "TIMED_OUT";
          task.reasonForIncompletion =
            `responseTimeout: ${limitS} exceeded for the taskId: ${task.taskId} with Task Definition: ${task.taskDefName}`;
          task.endTime = now;
          task.updateTime = now;
          timedOut++;
          changed = true;
        }
      }
      if (changed) this.#decide(workflow.workflowId as string);
    }
    if (timedOut > 0) this.onChange();
    return timedOut;
  }
}
