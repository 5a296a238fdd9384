/**
 * The executor: runs one attempt at a time for the supervisor. It never talks to Conductor;
 * its fence asks the broker through the supervisor. Transport-agnostic like the broker:
 * messages in through {@linkcode Executor.handle}, out through `emit`.
 *
 * {@linkcode runExecutorProcess} is the whole life of an executor process: read `init`, set
 * up logging, load the task modules, say `ready`, serve attempts until `shutdown` or until
 * the supervisor goes away (stdin closes: the running attempt is cancelled).
 *
 * @module
 */
import { getLogger, type Logger } from "../log/logger.ts";
import type { LakeFsApi } from "../lakefs/api.ts";
import type { DownloadCache } from "../lakefs/sync.ts";
import type { WarmPool } from "../workspace/warm_pool.ts";
import type { TaskDefinition } from "../task/types.ts";
import type { AttemptOptions, AttemptOutcome, CurrentTaskState } from "../workspace/attempt.ts";
import { MetricBuffer } from "../metrics/events.ts";
import type { AttemptMeter } from "./attempt_metrics.ts";
import type { AttemptTrace } from "./attempt_trace.ts";
import type { activeTraceparent } from "../otel/trace.ts";
import type { countingLakeFs, TransferCounts } from "./counting_lakefs.ts";
import {
  type ExecutorInit,
  ExecutorInitSchema,
  type FenceResultMessage,
  type FromExecutor,
  type ToExecutor,
  ToExecutorSchema,
  type WireOutcome,
} from "./protocol.ts";
import { type OpenChannel, receiveInit } from "./channel.ts";
import { trashedDirsRemoved } from "../workspace/attempt_dir.ts";
import { connectLane, type ExecutorLane } from "./lane_client.ts";
import { type CollectGarbage, IdleCollector } from "./idle_gc.ts";
import { loadOnce } from "../util/lazy.ts";
import { dropHosts, hostPort } from "./net_grant.ts";
import { importLazily } from "../util/lazy_import.ts";

/**
 * How long an attempt runs before its start is logged at info (see `Executor`): an attempt
 * that ends sooner is logged once, by its end line.
 */
export const START_LINE_DELAY_MS = 50;

/** Lifecycle of an executor. */
export type ExecutorState = "starting" | "running" | "draining" | "stopped" | "failed";

/** What attempts run with: the attempt function, the lakeFS client, the object cache, the warm pool. */
export interface AttemptTools {
  /** Runs one attempt (src/workspace/attempt.ts `runAttempt`). */
  runAttempt: (options: AttemptOptions) => Promise<AttemptOutcome>;
  /** `undefined` when the worker serves workspace-free tasks only. */
  lakefs: LakeFsApi | undefined;
  /** The host's object cache, shared by this executor's attempts. @default none */
  downloadCache?: DownloadCache;
  /**
   * The host's warm pool. Directories this executor leaves there become claimable once the
   * executor (process or Worker) has ended, when none of its tasks' code can run any more:
   * the executor ends after each attempt whose directory the pool kept (its `kept` count
   * grew), and the supervisor replaces it. @default none
   */
  warmPool?: WarmPool;
}

/** Options of {@linkcode Executor}. */
export interface ExecutorOptions {
  init: ExecutorInit;
  /** Loaded task definitions by name (the Conductor task type). */
  tasks: ReadonlyMap<string, TaskDefinition>;
  /**
   * What attempts run with, or its loader: called on the first attempt (again after a failed
   * load), so an executor that waits for work holds none of that code in memory.
   */
  tools: AttemptTools | (() => Promise<AttemptTools>);
  emit: (message: FromExecutor) => void;
  logger?: Logger;
  /**
   * A memory-reducing garbage collection, run once the executor has waited for work for a
   * second (at start and after each attempt; see idle_gc.ts). @default none
   */
  collectGarbage?: CollectGarbage;
  /**
   * How long an attempt's metric records may wait after its outcome for those of the next
   * attempts, ms: one metrics message for the attempts of that time instead of one each
   * (each is a message the supervisor reads and checks). 0: they are sent before the outcome,
   * so a supervisor relaying outcomes counts the attempt before its result reaches the broker.
   * An executor whose outcomes go over a lane (straight to the broker) has no such order to
   * keep. @default 0
   */
  metricsDelayMs?: number;
}

type ConductorTask = Extract<ToExecutor, { type: "attempt" }>["task"];

/** What measures an attempt: its trace, its metrics, the lakeFS client that counts. */
interface Instruments {
  AttemptMeter: typeof AttemptMeter;
  AttemptTrace: typeof AttemptTrace;
  countingLakeFs: typeof countingLakeFs;
  activeTraceparent: typeof activeTraceparent;
}

/**
 * The instruments, imported with the first attempt: an executor waiting for work holds
 * neither OpenTelemetry's API nor the metric catalog (about 1 MiB of RSS, measured).
 */
const loadInstruments = loadOnce(() =>
  Promise.all([
    importLazily<typeof import("./attempt_metrics.ts")>("runtime/attempt_metrics.ts"),
    importLazily<typeof import("./attempt_trace.ts")>("runtime/attempt_trace.ts"),
    importLazily<typeof import("./counting_lakefs.ts")>("runtime/counting_lakefs.ts"),
    importLazily<typeof import("../otel/trace.ts")>("otel/trace.ts"),
  ]).then(([metrics, trace, counting, otel]): Instruments => ({
    AttemptMeter: metrics.AttemptMeter,
    AttemptTrace: trace.AttemptTrace,
    countingLakeFs: counting.countingLakeFs,
    activeTraceparent: otel.activeTraceparent,
  }))
);

/**
 * Serves attempts one at a time. Each attempt's end is logged at info; its start too once it
 * has run {@linkcode START_LINE_DELAY_MS} (at once with debug on).
 *
 * @example
 * ```ts ignore
 * // runExecutorRole (roles.ts) wires the real ones: `init` from the supervisor, `tasks` loaded
 * // from the task modules, `emit` writing to the supervisor.
 * const executor = new Executor({ init, tasks, tools: { runAttempt, lakefs }, emit });
 * executor.handle({ type: "attempt", attemptId: "a1", task });
 * ```
 */
export class Executor {
  readonly #options: ExecutorOptions;
  readonly #log: Logger;
  #state: ExecutorState = "running";
  #busy: { attemptId: string; controller: AbortController; done: Promise<void> } | undefined;
  #nextRequestId = 1;
  readonly #drained = Promise.withResolvers<void>();
  readonly #fences = new Map<number, (answer: FenceResultMessage) => void>();
  /** The trace of each running attempt, for its outcome message. */
  readonly #traceparents = new Map<string, string>();
  /** Metric records for the supervisor, sent before each outcome (and within a second). */
  readonly #metrics: MetricBuffer;
  /** lakeFS answered (or not) since the last metrics message. */
  #lakefsContact: { ok: boolean; detail?: string } | undefined;
  /** The attempt tools, loaded on the first attempt; a failed load is tried again next time. */
  readonly #loadTools: () => Promise<AttemptTools>;
  /** The attempt whose directory the warm pool kept: the executor ends after it. */
  #recycleAfter: string | undefined;
  /** Collects garbage while the executor waits for work. */
  readonly #idleCollector: IdleCollector | undefined;
  /** The instruments once the first attempt has loaded them. */
  #instruments: Instruments | undefined;

  constructor(options: ExecutorOptions) {
    this.#options = options;
    this.#log = options.logger ?? getLogger("runtime", "executor");
    const { tools } = options;
    this.#loadTools = typeof tools === "function" ? loadOnce(tools) : () => Promise.resolve(tools);
    this.#metrics = new MetricBuffer((records) => {
      const contact = this.#lakefsContact;
      this.#lakefsContact = undefined;
      options.emit({
        type: "metrics",
        records,
        ...(contact === undefined ? {} : { contacts: [{ server: "lakefs", ...contact }] }),
      });
    });
    if (options.collectGarbage !== undefined) {
      this.#idleCollector = new IdleCollector({ collect: options.collectGarbage });
      this.#idleCollector.idle(); // the start-up garbage of loading the task modules
    }
  }

  /** The current lifecycle state. */
  get state(): ExecutorState {
    return this.#state;
  }

  /** Whether an attempt is running. */
  get busy(): boolean {
    return this.#busy !== undefined;
  }

  /** Handles one message from the supervisor (`init` is the transport's business). */
  handle(message: ToExecutor): void {
    switch (message.type) {
      case "attempt":
        this.#start(message.attemptId, message.task);
        return;
      case "fence-result": {
        const answer = this.#fences.get(message.requestId);
        this.#fences.delete(message.requestId);
        answer?.(message);
        return;
      }
      case "shutdown":
        this.#setState("draining");
        this.#checkDrained();
        return;
      case "init":
        return;
    }
  }

  /** Cancels the running attempt (the supervisor is gone). */
  abort(reason: string): void {
    this.#idleCollector?.stop();
    this.#busy?.controller.abort(new Error(reason));
    for (const [id, answer] of this.#fences) {
      answer({ type: "fence-result", requestId: id, error: reason });
    }
    this.#fences.clear();
  }

  /**
   * Resolves once `shutdown` was received and no attempt is running, or once the attempt
   * whose directory the warm pool kept has reported its outcome (the executor then ends).
   */
  get drained(): Promise<void> {
    return this.#drained.promise;
  }

  #checkDrained(): void {
    if (this.#state === "draining" && this.#busy === undefined) {
      this.#idleCollector?.stop();
      this.#metrics.flush(); // records held for later attempts go out before the end
      this.#setState("stopped");
      this.#drained.resolve();
    }
  }

  /** Sends the metric records held for later attempts now (the executor is ending). */
  flushMetrics(): void {
    this.#metrics.flush();
  }

  /** Resolves when no attempt is running. */
  async idle(): Promise<void> {
    while (this.#busy) await this.#busy.done;
  }

  #setState(next: ExecutorState): void {
    if (this.#state === next) return;
    this.#log.info("executor {from} -> {to}", { from: this.#state, to: next });
    this.#state = next;
  }

  #start(attemptId: string, task: ConductorTask): void {
    if (this.#busy) {
      // The supervisor never does this; answer so the task is not lost without a word.
      this.#log.error("attempt {attemptId} refused: attempt {running} is still running", {
        attemptId,
        running: this.#busy.attemptId,
      });
      this.#options.emit({
        type: "outcome",
        attemptId,
        outcome: {
          status: "FAILED",
          reasonForIncompletion: "executor busy: attempt handed to a busy executor; retry",
          stale: false,
          durationMs: 0,
        },
      });
      return;
    }
    this.#idleCollector?.busy();
    const controller = new AbortController();
    const done = this.#execute(attemptId, task, controller.signal).then((outcome) => {
      this.#busy = undefined;
      // At once (0): counted before the broker can deliver the result.
      this.#metrics.flushWithin(this.#options.metricsDelayMs ?? 0);
      const traceparent = this.#traceparents.get(attemptId);
      this.#traceparents.delete(attemptId);
      // A directory kept in the warm pool is claimable only once this executor (and so any
      // code its task left running) has ended: the executor ends, and the supervisor
      // replaces it before the slot takes another task.
      const recycle = this.#recycleAfter === attemptId && this.#state === "running";
      this.#recycleAfter = undefined;
      this.#options.emit({
        type: "outcome",
        attemptId,
        outcome,
        ...(traceparent === undefined ? {} : { traceparent }),
        ...(recycle ? { recycle: true as const } : {}),
      });
      if (recycle) {
        this.#log.info(
          "attempt {attemptId}: its directory went to the warm pool; the executor ends so " +
            "the next attempt can take it (recycled)",
          { attemptId },
        );
        this.#setState("draining");
      }
      if (this.#state === "running") this.#idleCollector?.idle();
      this.#checkDrained();
    });
    this.#busy = { attemptId, controller, done };
  }

  async #execute(
    attemptId: string,
    task: ConductorTask,
    signal: AbortSignal,
  ): Promise<WireOutcome> {
    const started = Date.now();
    const name = task.taskDefName ?? task.taskType;
    const definition = this.#options.tasks.get(name) ?? this.#options.tasks.get(task.taskType);
    const { init } = this.#options;
    if (definition === undefined) return notLoaded(name, this.#options.tasks, started);
    let kit: Instruments;
    try {
      kit = this.#instruments = await loadInstruments();
    } catch (error) {
      return crashed(error, this.#log, attemptId, init.failureReasonMaxLength, started);
    }
    const traced = this.#trace(kit, attemptId, task, name);
    // Every line of the attempt carries its trace id.
    const log = this.#log.with(traced.logIds);
    const ids = { attemptId, taskId: task.taskId, workflowInstanceId: task.workflowInstanceId };
    const startLine = () =>
      log.info("attempt {attemptId}: task {taskId} of {taskDefName} started", {
        ...ids,
        taskDefName: name,
      });
    // A quick attempt's start is not worth a line of its own (its end line says how long it
    // ran; two lines an attempt were a third of an executor's CPU per trivial task): the start
    // is logged once the attempt has run START_LINE_DELAY_MS, or at once with debug on.
    let startTimer: ReturnType<typeof setTimeout> | undefined;
    if (log.isEnabledFor("debug")) startLine();
    else startTimer = setTimeout(startLine, START_LINE_DELAY_MS);
    // Metrics come from the phases, the outcome and the counting lakeFS client.
    const meter = new kit.AttemptMeter(name, this.#metrics);
    let counting: ReturnType<typeof countingLakeFs> | undefined;
    const wire = (outcome: WireOutcome): WireOutcome => {
      meter.finish(outcome, counting?.counts ?? NOTHING_MOVED);
      traced.end(outcome);
      return outcome;
    };
    const budget = attemptBudget(name, definition.controls.timeout.seconds, signal);
    try {
      const tools = await this.#loadTools();
      counting = this.#countingLakeFs(kit, tools.lakefs);
      const kept = tools.warmPool?.kept ?? 0;
      const outcome = await traced.run(() =>
        tools.runAttempt({
          task: definition,
          input: task.inputData ?? {},
          attempt: attemptIdentity(task, name),
          workspaceRoot: init.workspaceRoot,
          ownerWorkerId: init.workerId,
          failureReasonMaxLength: init.failureReasonMaxLength,
          ...(counting === undefined ? {} : { lakefs: counting.api }),
          ...(tools.downloadCache === undefined ? {} : { downloadCache: tools.downloadCache }),
          ...(tools.warmPool === undefined ? {} : { warmPool: tools.warmPool }),
          onPhase: (phase) => {
            meter.phase(phase);
            traced.phase(phase);
          },
          onMetric: (record) => this.#metrics.add(record),
          loadCurrentAttempt: (fenceSignal) => this.#fence(task, fenceSignal),
          signal: budget.signal,
          logger: log,
          refStyle: init.workspaceRefStyle ?? "snake",
          // The outcome goes out before the attempt directory is removed; the process waits
          // for those removals before it exits (runExecutorProcess).
          removeDirInBackground: true,
        })
      );
      if ((tools.warmPool?.kept ?? 0) > kept) this.#recycleAfter = attemptId;
      // No start line after this one: nothing awaits between here and the `finally`'s clear.
      log.info("attempt {attemptId}: task {taskId} ended {status}", {
        ...ids,
        status: outcome.status,
        stale: outcome.stale,
        durationMs: outcome.durationMs,
      });
      return wire(wireOutcome(outcome));
    } catch (error) {
      // runAttempt maps task errors itself; reaching here is a bug or a cancellation.
      return wire(crashed(error, log, attemptId, init.failureReasonMaxLength, started));
    } finally {
      clearTimeout(startTimer);
      budget.clear();
    }
  }

  /** The spans of one attempt; its traceparent goes with its outcome message. */
  #trace(kit: Instruments, attemptId: string, task: ConductorTask, name: string): AttemptTrace {
    const traced = new kit.AttemptTrace({
      taskType: name,
      workflowInstanceId: task.workflowInstanceId,
      taskId: task.taskId,
      retryCount: task.retryCount,
      workerId: this.#options.init.workerId,
    });
    const traceparent = traced.traceparent;
    if (traceparent !== undefined) this.#traceparents.set(attemptId, traceparent);
    return traced;
  }

  /**
   * The lakeFS client of one attempt: it counts what moves and notes whether lakeFS answered;
   * `undefined` for a worker of workspace-free tasks (no lakeFS).
   */
  #countingLakeFs(
    kit: Instruments,
    lakefs: LakeFsApi | undefined,
  ): ReturnType<typeof countingLakeFs> | undefined {
    if (lakefs === undefined) return undefined;
    return kit.countingLakeFs(lakefs, {
      onContact: (ok, error) => {
        this.#lakefsContact = ok
          ? { ok }
          : { ok, detail: `request failed (${error instanceof Error ? error.name : "error"})` };
      },
    });
  }

  /** The fence: asks the broker (through the supervisor) for the task's current state. */
  #fence(task: ConductorTask, signal: AbortSignal): Promise<CurrentTaskState> {
    const requestId = this.#nextRequestId++;
    return new Promise<CurrentTaskState>((resolve, reject) => {
      const onAbort = () => {
        this.#fences.delete(requestId);
        reject(signal.reason);
      };
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener("abort", onAbort, { once: true });
      this.#fences.set(requestId, (answer) => {
        signal.removeEventListener("abort", onAbort);
        if (answer.state) resolve(answer.state);
        else if (answer.notFound) {
          // Conductor no longer knows the task: not ours any more, the fence must fail.
          resolve({
            status: "NOT_FOUND",
            workflowInstanceId: task.workflowInstanceId,
            taskId: task.taskId,
            retryCount: task.retryCount,
          });
        } else {
          reject(
            new Error(
              `fence look-up of task ${task.taskId} failed: ${answer.error ?? "no answer"}; ` +
                "the attempt is not published",
            ),
          );
        }
      });
      // A fence is asked within an attempt, whose start loaded the instruments.
      const traceparent = this.#instruments?.activeTraceparent();
      this.#options.emit({
        type: "fence",
        requestId,
        taskId: task.taskId,
        ...(traceparent === undefined ? {} : { traceparent }),
      });
    });
  }
}

/** The Conductor identity of the attempt of `task` (a task of the type `name`). */
function attemptIdentity(task: ConductorTask, name: string): AttemptOptions["attempt"] {
  return {
    workflowInstanceId: task.workflowInstanceId,
    taskId: task.taskId,
    retryCount: task.retryCount,
    referenceTaskName: task.referenceTaskName ?? name,
    seq: task.seq ?? 0,
    iteration: task.iteration ?? 0,
    taskDefName: name,
  };
}

/**
 * The signal of an attempt: `signal`, and, when the task has a budget
 * (`controls.timeout.seconds`, Conductor's timeoutSeconds of one try), its end. Past it the
 * signal aborts with {@linkcode AttemptTimeoutError}, so a task that honours ctx.signal ends
 * as FAILED and frees its slot instead of holding it (and its extended lease) forever.
 */
function attemptBudget(
  name: string,
  budgetSeconds: number,
  signal: AbortSignal,
): { signal: AbortSignal; clear(): void } {
  if (!(budgetSeconds > 0)) return { signal, clear: () => {} };
  const budget = new AbortController();
  const timer = setTimeout(
    () => budget.abort(new AttemptTimeoutError(name, budgetSeconds)),
    budgetSeconds * 1000,
  );
  return { signal: AbortSignal.any([signal, budget.signal]), clear: () => clearTimeout(timer) };
}

/** The outcome of an attempt of a task this executor has not loaded. */
function notLoaded(
  name: string,
  tasks: ReadonlyMap<string, TaskDefinition>,
  started: number,
): WireOutcome {
  const known = [...tasks.keys()].join(", ");
  return failed(
    `no task named ${name} is loaded by this worker (it serves ${known}); start perago ` +
      "with that task's module",
    started,
  );
}

/** The outcome of an attempt that threw past runAttempt (a bug or a cancellation), logged. */
function crashed(
  error: unknown,
  log: Logger,
  attemptId: string,
  maxLength: number,
  started: number,
): WireOutcome {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  log.error("attempt {attemptId} crashed: {message}", { attemptId, message });
  return failed(`attempt crashed: ${message}`.slice(0, maxLength), started);
}

/** A FAILED outcome of an attempt that did not get to run (or crashed), begun at `started`. */
function failed(reason: string, started: number): WireOutcome {
  return {
    status: "FAILED",
    reasonForIncompletion: reason,
    stale: false,
    durationMs: Date.now() - started,
  };
}

/** The outcome as the protocol carries it (what the broker reports to Conductor). */
function wireOutcome(outcome: AttemptOutcome): WireOutcome {
  return {
    status: outcome.status,
    stale: outcome.stale,
    durationMs: outcome.durationMs,
    ...(outcome.outputData === undefined ? {} : { outputData: outcome.outputData }),
    ...(outcome.reasonForIncompletion === undefined
      ? {}
      : { reasonForIncompletion: outcome.reasonForIncompletion }),
    ...(outcome.publishedRef === undefined ? {} : { publishedRef: outcome.publishedRef }),
  };
}

/** An attempt ran past its task's `controls.timeout.seconds` and was aborted. */
export class AttemptTimeoutError extends Error {
  override name = "AttemptTimeoutError";
  constructor(taskName: string, seconds: number, options?: { cause?: unknown }) {
    super(
      `task ${taskName} ran past controls.timeout.seconds (${seconds} s): attempt aborted; ` +
        "make the task honour ctx.signal and finish sooner, or raise timeout.seconds",
      options,
    );
  }
}

/**
 * How long an attempt's metric records wait for the next attempts' when outcomes go over a
 * lane (see {@linkcode ExecutorOptions.metricsDelayMs}): the lazy hold of a metrics message
 * (`MessageWriter`'s 20 ms), so the supervisor gets them within about twice that.
 */
const LANE_METRICS_DELAY_MS = 20;

/** What {@linkcode runExecutorProcess} needs from its host (the CLI wires the real ones). */
export interface ExecutorProcessDeps {
  /** Opens the channel to the supervisor (stdio of a process, or a Worker's messages). */
  open: OpenChannel;
  /** Sets up this process's logging; returns its disposer. */
  setupLogging: (init: ExecutorInit) => Promise<{ dispose(): Promise<void> }>;
  /** Loads the task modules by name. */
  loadTasks: (modules: readonly string[]) => Promise<Map<string, TaskDefinition>>;
  /**
   * Loads and makes what attempts run with (the attempt code, the lakeFS client when `init`
   * has lakeFS settings, the host's object cache and warm pool): called on the first attempt, not at start.
   */
  loadAttemptTools: (init: ExecutorInit) => Promise<AttemptTools>;
  /** See {@linkcode ExecutorOptions.collectGarbage}. @default none */
  collectGarbage?: CollectGarbage;
}

/**
 * Drops the hosts the supervisor named (Conductor's) from this process's network grant before
 * any task module loads (see net_grant.ts). A host Deno cannot drop alone is logged; a message
 * (for `fatal`) when dropping it would have taken lakeFS too.
 */
async function dropForeignHosts(init: ExecutorInit, log: Logger): Promise<string | undefined> {
  if (init.dropHosts === undefined || init.dropHosts.length === 0) return undefined;
  try {
    const kept = init.lakefs === undefined ? undefined : hostPort(init.lakefs.endpointUrl);
    const left = await dropHosts(init.dropHosts, kept);
    if (left.length > 0) {
      log.warn(
        "executor {workerId}: task code can still reach {hosts}: the network grant covering " +
          "it covers lakeFS too; grant each server as host:port",
        { workerId: init.workerId, hosts: left.join(", ") },
      );
    }
    return undefined;
  } catch (error) {
    const message = (error as Error).message;
    log.error("executor {workerId}: {message}", { workerId: init.workerId, message });
    return message;
  }
}

/**
 * Loads the executor's task modules and, when its init names a lane, connects to it: with a
 * lane, attempts come from the broker over it, and outcomes and fences go back there; the
 * supervisor's channel keeps the rest (ready, metrics, shutdown). What failed is logged and
 * returned as `fatal`, for the supervisor.
 */
async function loadTasksAndLane(
  deps: ExecutorProcessDeps,
  init: ExecutorInit,
  log: Logger,
): Promise<
  { tasks: Map<string, TaskDefinition>; lane: ExecutorLane | undefined } | {
    fatal: string;
  }
> {
  let tasks: Map<string, TaskDefinition>;
  try {
    tasks = await deps.loadTasks(init.modules);
  } catch (error) {
    const message = (error as Error).message;
    log.error("executor {workerId} cannot load its tasks: {message}", {
      workerId: init.workerId,
      message,
    });
    return { fatal: message };
  }
  if (init.lane === undefined) return { tasks, lane: undefined };
  try {
    const lane = await connectLane(init.lane, {
      onInvalid: (error) =>
        log.warn("ignored an invalid lane line: {message}", { message: error.message }),
    });
    return { tasks, lane };
  } catch (error) {
    const message = (error as Error).message;
    log.error("executor {workerId}: {message}", { workerId: init.workerId, message });
    return { fatal: message };
  }
}

/**
 * The life of an executor process. Resolves with the exit code: 0 after `shutdown` or after
 * an attempt whose directory the warm pool kept (`outcome` with `recycle`), 1 when init or
 * loading failed, 2 when the supervisor (or, over a lane, the broker) went away.
 */
export async function runExecutorProcess(deps: ExecutorProcessDeps): Promise<number> {
  const log = getLogger("runtime", "executor");
  const out = deps.open<ToExecutor, FromExecutor>(ToExecutorSchema, (error) => {
    log.warn("ignored an invalid protocol line: {message}", { message: error.message });
  });
  const messages = out.messages;
  const init = await receiveInit(out, "executor", ExecutorInitSchema);
  if (init === undefined) return 1;
  let logging: { dispose(): Promise<void> } | undefined;
  try {
    logging = await deps.setupLogging(init);
    const narrowFailed = await dropForeignHosts(init, log);
    if (narrowFailed !== undefined) {
      await out.send({ type: "fatal", message: narrowFailed });
      return 1;
    }
    const prepared = await loadTasksAndLane(deps, init, log);
    if ("fatal" in prepared) {
      await out.send({ type: "fatal", message: prepared.fatal });
      return 1;
    }
    const { tasks, lane } = prepared;
    const executor = new Executor({
      init,
      tasks,
      tools: () => deps.loadAttemptTools(init),
      emit: (message) =>
        void (lane !== undefined && (message.type === "outcome" || message.type === "fence")
          ? lane.send(message)
          : out.send(message)),
      ...(deps.collectGarbage === undefined ? {} : { collectGarbage: deps.collectGarbage }),
      ...(lane === undefined ? {} : { metricsDelayMs: LANE_METRICS_DELAY_MS }),
    });
    // Debug, not info: the supervisor logs each executor's readiness ("executor <id> ready"), and
    // an idle executor that has logged nothing holds about 0.3 MiB less (a log line's first
    // formatting and writing load code it keeps; idle executor 50.2 -> 49.9 MiB RSS, medians
    // of 7 alternated runs).
    log.debug("executor {workerId} (slot {slot}) ready: {tasks}", {
      workerId: init.workerId,
      slot: init.slot,
      tasks: [...tasks.keys()].join(", "),
    });
    await out.send({ type: "ready", pid: Deno.pid });
    // Keep reading while draining: a running attempt still needs its fence answers.
    const pump = (async () => {
      for await (const message of messages) executor.handle(message);
      return 2;
    })();
    const lanePump = lane === undefined ? new Promise<number>(() => {}) : (async () => {
      for await (const message of lane.messages) executor.handle(message);
      return 3;
    })();
    const code = await Promise.race([pump, lanePump, executor.drained.then(() => 0)]);
    if (code >= 2) {
      const who = code === 2 ? "the supervisor" : "the broker (its lane closed)";
      log.warn("executor {workerId}: {who} went away; cancelling", {
        workerId: init.workerId,
        who,
      });
      executor.abort(`${who} went away`);
    }
    await executor.idle();
    executor.flushMetrics();
    // The attempt directories moved to the trash are removed before the executor exits (one
    // killed meanwhile leaves its trash to the supervisor's workspace sweep).
    await trashedDirsRemoved();
    await lane?.close();
    await out.close();
    return Math.min(code, 2);
  } finally {
    await logging?.dispose();
  }
}

const NOTHING_MOVED: Readonly<TransferCounts> = Object.freeze({
  downloadedObjects: 0,
  downloadedBytes: 0,
  uploadedObjects: 0,
  uploadedBytes: 0,
});
