/**
 * The wire protocol between the supervisor and its child processes (broker and executors):
 * newline-delimited JSON over the child's stdin (to the child) and stdout (from the child),
 * validated with zod at both ends. stderr stays free for human logs.
 *
 * Flow (process mode):
 * ```
 * supervisor --init--> broker                 supervisor --init--> executor[slot]
 * broker --ready-->                           executor --ready-->   (slot idle)
 * supervisor --credit{n}--> broker            one credit per idle executor
 * broker --tasks[]--> supervisor --attempt--> executor, and --assigned--> broker
 * executor --fence{requestId,taskId}--> supervisor --fence--> broker (getTask)
 * broker --fence-result--> supervisor --fence-result--> executor
 * executor --outcome--> supervisor --result{credit}--> broker (ResultDelivery; update-v2 hands
 *   back the next task when the broker has a free credit) --delivered-->
 * executor died mid-attempt: supervisor --abandon--> broker (reports FAILED)
 * outcome{recycle}: the executor kept its directory in the warm pool and exits; the
 *   supervisor starts its replacement at once (no task meanwhile, no backoff)
 * SIGTERM: supervisor --drain--> broker; broker --drained--> once every result is delivered;
 * supervisor --shutdown--> executors and broker.
 * broker, executor --metrics{records, contacts}--> supervisor (which owns the registry)
 * ```
 *
 * Process mode with executor lanes (lane_router.ts): tasks, fences and outcomes go between
 * the broker and each executor over a Unix socket of its own (a lane), not through the
 * supervisor, which only starts and watches the processes:
 * ```
 * supervisor --lane-open{slot, id, secret}--> broker    (before each executor starts)
 * executor --hello{id, secret}--> broker (its lane)     (after loading its tasks)
 * broker --attempt--> executor, executor --outcome--> broker, fence/fence-result likewise
 * broker --lane-attempt / lane-ended--> supervisor      (watchdog, metrics; lazy)
 * executor exited: supervisor --lane-closed{id, reason}--> broker (reports its attempt FAILED)
 * lane closed while its executor lives: broker --lane-lost--> supervisor (kills it)
 * ```
 *
 * Thread mode carries the same messages as structured-clone objects: to and from executor
 * Workers in batches (one `postMessage` per turn, see {@linkcode MessageBatcher}), to and
 * from the broker through in-memory queues (it runs in the supervisor's isolate).
 *
 * Every message is one JSON object on one line; a line that is not a valid message is
 * reported through `onInvalid` and skipped, never fatal (a stray `console.log` in a task
 * must not kill the channel).
 *
 * Every schema here is built on its first use (`z.lazy`), so each process builds only those of
 * the messages it reads: an executor reads `ToExecutorSchema`'s alone. Built at import, the
 * schemas of every direction were about 2,000 of zod's constructor calls in each executor
 * before its first message (its V8 heap 0.3 MB larger, and zod's constructors run often
 * enough for V8 to compile them: see executorV8Flags in permissions.ts).
 *
 * @module
 */
import { concatBytes } from "../util/bytes.ts";
import { z } from "../vendor/zod.ts";
import { buildOnce } from "../util/lazy.ts";
import {
  type CheckedValue,
  checkWith,
  isFiniteNumber,
  isPlainObject,
  setQuickCheck,
} from "../util/quick_check.ts";
import { MetricRecordSchema } from "../metrics/events.ts";
import type { CurrentTaskState } from "../workspace/fence.ts";

/**
 * The fields of a Conductor Task the runtime uses, the only ones that cross the wire
 * ({@linkcode wireTask}): a polled task also carries its whole workflow task definition and
 * more, several KiB that every hop would encode, decode and check for nothing.
 */
export const TaskSchema = z.lazy(() =>
  z.object({
    taskId: z.string().min(1),
    taskType: z.string(),
    taskDefName: z.string().optional(),
    workflowInstanceId: z.string().min(1),
    status: z.string(),
    retryCount: z.number().int().nonnegative(),
    referenceTaskName: z.string().optional(),
    seq: z.number().optional(),
    iteration: z.number().optional(),
    responseTimeoutSeconds: z.number().optional(),
    inputData: z.record(z.string(), z.unknown()).optional(),
  })
);

/** A task as it crosses the wire. */
export type WireTask = z.infer<typeof TaskSchema>;

const wireTaskFields = buildOnce(() =>
  Object.keys(TaskSchema.unwrap().shape) as (keyof WireTask)[]
);

/**
 * `task` with only the fields of {@linkcode TaskSchema} (what the broker hands out).
 *
 * @example
 * ```ts
 * wireTask({ taskId: "t1", taskType: "sum", workflowInstanceId: "w1", status: "IN_PROGRESS",
 *   retryCount: 0, workflowTask: { name: "sum", inputParameters: {} } });
 * // { taskId: "t1", taskType: "sum", workflowInstanceId: "w1", status: "IN_PROGRESS",
 * //   retryCount: 0 }
 * ```
 */
export function wireTask(task: Readonly<Record<string, unknown>>): WireTask {
  const out: Record<string, unknown> = {};
  for (const field of wireTaskFields()) {
    if (task[field] !== undefined) out[field] = task[field];
  }
  return out as WireTask;
}

/** What an executor's fence learns about the current Conductor attempt (the fence's own type). */
export const FenceStateSchema: z.ZodType<CurrentTaskState> = z.lazy(() =>
  z.object({
    status: z.string(),
    workflowInstanceId: z.string(),
    taskId: z.string(),
    retryCount: z.number(),
  })
);

/** The result of one attempt as the executor reports it (see src/workspace/attempt.ts). */
export const OutcomeSchema = z.lazy(() =>
  z.object({
    status: z.enum(["COMPLETED", "FAILED", "FAILED_WITH_TERMINAL_ERROR"]),
    outputData: z.record(z.string(), z.unknown()).optional(),
    reasonForIncompletion: z.string().optional(),
    /** A stale attempt (the fence failed) is never reported to Conductor. */
    stale: z.boolean(),
    publishedRef: z.string().optional(),
    durationMs: z.number().nonnegative(),
  })
);
/** See {@linkcode OutcomeSchema}. */
export type WireOutcome = z.infer<typeof OutcomeSchema>;

/** Settings every child needs for its logging. */
export const LogInitSchema = z.lazy(() =>
  z.object({
    logRoot: z.string(),
    moduleName: z.string(),
    workerId: z.string(),
    maxFileBytes: z.number().int().positive(),
    retentionMs: z.number().int().positive(),
    debug: z.boolean(),
  })
);

/** The executor's configuration, sent once, first, instead of environment variables. */
export const ExecutorInitSchema = z.lazy(() =>
  z.object({
    slot: z.number().int().nonnegative(),
    workerId: z.string(),
    /** Absolute paths or URLs of the task modules to load. */
    modules: z.array(z.string()).min(1),
    workspaceRoot: z.string(),
    failureReasonMaxLength: z.number().int().positive(),
    /** `PERAGO_WORKSPACE_REF_STYLE`: `ref_type` (snake) or `refType` (camel) in outputs. */
    workspaceRefStyle: z.enum(["snake", "camel"]).optional(),
    /** Bound of the host's object cache under the workspace root; 0: no cache. */
    objectCacheMaxBytes: z.number().int().nonnegative().optional(),
    /** Directories the host's warm pool keeps under the workspace root; 0: no pool. */
    warmPoolDirs: z.number().int().nonnegative().optional(),
    /** Bytes the warm pool's directories may hold together. @default no bound */
    warmPoolMaxBytes: z.number().int().positive().optional(),
    /**
     * Smallest directory (in downloaded files) the executor keeps in the warm pool, ending
     * after it (see `PERAGO_WARM_POOL_MIN_FILES`). @default 0: every one
     */
    warmPoolMinFiles: z.number().int().nonnegative().optional(),
    /**
     * The executor's lane to the broker (process mode): the Unix socket it connects to, the
     * lane's id and the secret it proves itself with. Absent: attempts come from the supervisor.
     */
    lane: z.object({
      path: z.string().min(1),
      id: z.number().int().positive(),
      secret: z.string().min(32),
    }).optional(),
    /**
     * Hosts (`host:port`) the executor drops from its network grant before it loads a task
     * module: Conductor's (a compiled binary's children share the supervisor's baked hosts).
     */
    dropHosts: z.array(z.string().min(1)).optional(),
    /** Absent when the worker serves workspace-free tasks only (no lakeFS configured). */
    lakefs: z.object({
      endpointUrl: z.string(),
      accessKeyId: z.string(),
      secretAccessKey: z.string(),
      /** No proxy in the supervisor's environment, which the executor may not read. */
      noProxy: z.boolean().optional(),
    }).optional(),
    log: LogInitSchema,
  })
);
/** See {@linkcode ExecutorInitSchema}. */
export type ExecutorInit = z.infer<typeof ExecutorInitSchema>;

/** How the broker polls one task type (see `TaskPolling` in broker.ts). */
export const TaskPollingSchema = z.lazy(() =>
  z.object({
    /** Conductor task domain of the polls; unset = the default queue. */
    domain: z.string().min(1).optional(),
    /** Most tasks of the type in flight on this host. */
    concurrency: z.number().int().positive().optional(),
    /** Fixed polling interval while idle, ms; unset = adaptive. */
    pollIntervalMs: z.number().int().positive().optional(),
    /** Most tasks one poll asks for. */
    batchSize: z.number().int().positive().optional(),
  })
);

/** The broker's configuration, sent once, first. */
export const BrokerInitSchema = z.lazy(() =>
  z.object({
    /** Poll with this worker id (`<prefix>Broker`). */
    workerId: z.string(),
    /**
     * Conductor task types to poll (one per loaded task module, paused ones left out); empty
     * when every one is paused.
     */
    taskTypes: z.array(z.string()),
    /** Per task type: domain, per-host concurrency, polling. */
    taskPolling: z.record(z.string(), TaskPollingSchema).optional(),
    /** Served task types that are paused (`PERAGO_TASK_PAUSED`): never polled. */
    pausedTaskTypes: z.array(z.string()).optional(),
    conductor: z.object({
      serverUrl: z.string(),
      authKey: z.string().optional(),
      authSecret: z.string().optional(),
    }),
    /** Long-poll time of one batch poll in ms (Conductor rejects more than 5000). */
    pollTimeoutMs: z.number().int().min(0).max(5000),
    /**
     * Executor lanes: the Unix socket of each slot, by slot index. Set: tasks go to the
     * executors over them (lane_router.ts) and the supervisor grants no credits.
     */
    lanes: z.array(z.string().min(1)).min(1).optional(),
    log: LogInitSchema,
  })
);
/** See {@linkcode BrokerInitSchema}. */
export type BrokerInit = z.infer<typeof BrokerInitSchema>;

const fenceResult = z.lazy(() =>
  z.object({
    type: z.literal("fence-result"),
    requestId: z.number().int(),
    state: FenceStateSchema.optional(),
    /** Set when the look-up failed; `notFound` when Conductor no longer knows the task. */
    error: z.string().optional(),
    notFound: z.boolean().optional(),
  })
);
/** A fence answer (broker to supervisor, supervisor to executor). */
export type FenceResultMessage = z.infer<typeof fenceResult>;

/**
 * Metric records for the supervisor's registry, and whether the child's requests reached
 * Conductor (broker) or lakeFS (executors) since its last report (for `/readyz`).
 */
const metricsMessage = z.lazy(() =>
  z.object({
    type: z.literal("metrics"),
    records: z.array(MetricRecordSchema),
    contacts: z.array(z.object({
      server: z.enum(["conductor", "lakefs"]),
      ok: z.boolean(),
      detail: z.string().max(500).optional(),
    })).optional(),
  })
);
/** See `metricsMessage`: what the broker and the executors report for observability. */
export type MetricsMessage = z.infer<typeof metricsMessage>;

/** Supervisor to executor. */
export const ToExecutorSchema = z.lazy(() =>
  z.discriminatedUnion("type", [
    z.object({ type: z.literal("init"), init: ExecutorInitSchema }),
    z.object({ type: z.literal("attempt"), attemptId: z.string(), task: TaskSchema }),
    fenceResult,
    z.object({ type: z.literal("shutdown") }),
  ])
);
/** See {@linkcode ToExecutorSchema}. */
export type ToExecutor = z.infer<typeof ToExecutorSchema>;

/**
 * A fence look-up, executor to supervisor and supervisor to broker (the same message): the
 * current Conductor state of `taskId`, answered by a `fence-result` with `requestId`.
 */
const fenceRequest = z.lazy(() =>
  z.object({
    type: z.literal("fence"),
    requestId: z.number().int(),
    taskId: z.string(),
    /** The attempt's trace (W3C traceparent): the look-up becomes a span of it. */
    traceparent: z.string().max(100).optional(),
  })
);

const outcomeMessage = z.lazy(() =>
  z.object({
    type: z.literal("outcome"),
    attemptId: z.string(),
    outcome: OutcomeSchema,
    traceparent: z.string().max(100).optional(),
    /**
     * The attempt's directory went to the warm pool: the executor now exits (code 0) so that
     * the directory becomes claimable, and its slot takes no task until its replacement is
     * ready (a planned replacement, not a failure).
     */
    recycle: z.literal(true).optional(),
  })
);

/** Executor to supervisor. */
export const FromExecutorSchema = z.lazy(() =>
  z.discriminatedUnion("type", [
    z.object({ type: z.literal("ready"), pid: z.number().int() }),
    fenceRequest,
    outcomeMessage,
    /** The executor cannot go on (bad init, task module failed to load). */
    z.object({ type: z.literal("fatal"), message: z.string() }),
    metricsMessage,
  ])
);
/** See {@linkcode FromExecutorSchema}. */
export type FromExecutor = z.infer<typeof FromExecutorSchema>;

/**
 * Executor to broker over the executor's lane: `hello` first (the lane's id and secret),
 * then fence look-ups and outcomes. The broker answers over the lane with `attempt` and
 * `fence-result` ({@linkcode ToExecutorSchema}).
 */
export const FromLaneSchema = z.lazy(() =>
  z.discriminatedUnion("type", [
    z.object({ type: z.literal("hello"), id: z.number().int().positive(), secret: z.string() }),
    fenceRequest,
    outcomeMessage,
  ])
);
/** See {@linkcode FromLaneSchema}. */
export type FromLane = z.infer<typeof FromLaneSchema>;

/** Supervisor to broker. */
export const ToBrokerSchema = z.lazy(() =>
  z.discriminatedUnion("type", [
    z.object({ type: z.literal("init"), init: BrokerInitSchema }),
    /** `n` more executor slots are free: the broker may hold `n` more tasks. */
    z.object({ type: z.literal("credit"), n: z.number().int().positive() }),
    /** `taskId` went to the executor `workerId` (lease extensions then carry that id). */
    z.object({ type: z.literal("assigned"), taskId: z.string(), workerId: z.string() }),
    fenceRequest,
    z.object({
      type: z.literal("result"),
      taskId: z.string(),
      workerId: z.string(),
      outcome: OutcomeSchema,
      /** The attempt's trace: the delivery becomes a span of it. */
      traceparent: z.string().max(100).optional(),
      /**
       * Credits granted with the result (the slot it freed), so the broker has them when it
       * posts the result and may take the next task in the same call (`update-v2`).
       */
      credit: z.number().int().positive().optional(),
    }),
    /** The executor running `taskId` died: report the attempt FAILED (retryable). */
    z.object({
      type: z.literal("abandon"),
      taskId: z.string(),
      workerId: z.string(),
      reason: z.string(),
    }),
    z.object({ type: z.literal("drain") }),
    z.object({ type: z.literal("shutdown") }),
    /** Lanes: the executor of `slot` starting now may connect as lane `id` with `secret`. */
    z.object({
      type: z.literal("lane-open"),
      slot: z.number().int().nonnegative(),
      id: z.number().int().positive(),
      workerId: z.string(),
      secret: z.string().min(32),
    }),
    /** Lanes: the executor of lane `id` exited; its attempt, if any, is reported FAILED. */
    z.object({
      type: z.literal("lane-closed"),
      id: z.number().int().positive(),
      reason: z.string(),
    }),
    /** Lanes: a forced stop; report the tasks no executor took FAILED (retryable). */
    z.object({ type: z.literal("abandon-queued"), reason: z.string() }),
  ])
);
/** See {@linkcode ToBrokerSchema}. */
export type ToBroker = z.infer<typeof ToBrokerSchema>;

/** Broker to supervisor. */
export const FromBrokerSchema = z.lazy(() =>
  z.discriminatedUnion("type", [
    z.object({ type: z.literal("ready"), pid: z.number().int() }),
    z.object({ type: z.literal("tasks"), tasks: z.array(TaskSchema) }),
    fenceResult,
    /** A result left the broker: delivered, dropped (Conductor answered 404) or skipped (stale). */
    z.object({
      type: z.literal("delivered"),
      taskId: z.string(),
      how: z.enum(["delivered", "dropped", "skipped"]),
    }),
    /** Draining finished: nothing is held, every result has been delivered. */
    z.object({ type: z.literal("drained") }),
    /** Lanes: attempt `attemptId` of `taskId` went to the executor of lane `id`. */
    z.object({
      type: z.literal("lane-attempt"),
      id: z.number().int().positive(),
      attemptId: z.string(),
      taskId: z.string(),
      taskType: z.string(),
    }),
    /**
     * Lanes: the attempt ended (its outcome arrived, or it was reported FAILED because its
     * executor went away); `recycle`: the executor ends after it (warm pool).
     */
    z.object({
      type: z.literal("lane-ended"),
      id: z.number().int().positive(),
      attemptId: z.string(),
      taskType: z.string(),
      recycle: z.literal(true).optional(),
    }),
    /** Lanes: lane `id` closed (or broke the protocol) while its executor may live: kill it. */
    z.object({ type: z.literal("lane-lost"), id: z.number().int().positive(), reason: z.string() }),
    z.object({ type: z.literal("fatal"), message: z.string() }),
    metricsMessage,
  ])
);
/** See {@linkcode FromBrokerSchema}. */
export type FromBroker = z.infer<typeof FromBrokerSchema>;

const encoder = new TextEncoder();

/**
 * Encodes one message as a JSON line.
 *
 * @example
 * ```ts
 * encodeMessage({ type: "drain" }); // bytes of '{"type":"drain"}\n'
 * ```
 */
export function encodeMessage(message: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(message) + "\n");
}

/**
 * Checks `value` against `schema` ({@linkcode checkWith}): the schemas of the per-task messages
 * try their quick checks first, {@linkcode ToExecutorSchema} ({@linkcode quickAttempt}: an
 * executor's attempts), {@linkcode FromLaneSchema} ({@linkcode quickLaneOutcome}: the
 * outcomes the broker reads from the lanes) and {@linkcode FromBrokerSchema}
 * ({@linkcode quickFromBroker}: what the supervisor hears of each task).
 */
export function checkMessage<T>(schema: z.ZodType<T>, value: unknown): CheckedValue<T> {
  return checkWith(schema, value);
}

const isString = (value: unknown): value is string => typeof value === "string";

/**
 * An `attempt` message as {@linkcode ToExecutorSchema} takes it (its task as
 * {@linkcode TaskSchema}), or `undefined`: not one, or not valid (the schema then says why).
 */
export function quickAttempt(value: unknown): ToExecutor | undefined {
  if (!isPlainObject(value) || value.type !== "attempt" || !isString(value.attemptId)) {
    return undefined;
  }
  const task = value.task;
  if (
    !isPlainObject(task) || !isString(task.taskId) || task.taskId.length === 0 ||
    !isString(task.taskType) || !isString(task.workflowInstanceId) ||
    task.workflowInstanceId.length === 0 || !isString(task.status) ||
    !Number.isSafeInteger(task.retryCount) || (task.retryCount as number) < 0
  ) return undefined;
  const out: Record<string, unknown> = {
    taskId: task.taskId,
    taskType: task.taskType,
    workflowInstanceId: task.workflowInstanceId,
    status: task.status,
    retryCount: task.retryCount,
  };
  for (const key of ["taskDefName", "referenceTaskName"] as const) {
    const field = task[key];
    if (field === undefined) continue;
    if (!isString(field)) return undefined;
    out[key] = field;
  }
  for (const key of ["seq", "iteration", "responseTimeoutSeconds"] as const) {
    const field = task[key];
    if (field === undefined) continue;
    if (!isFiniteNumber(field)) return undefined;
    out[key] = field;
  }
  if (task.inputData !== undefined) {
    if (!isPlainObject(task.inputData)) return undefined;
    out.inputData = { ...task.inputData };
  }
  return { type: "attempt", attemptId: value.attemptId, task: out as WireTask };
}
setQuickCheck(ToExecutorSchema, quickAttempt);

const DELIVERED_HOW: ReadonlySet<unknown> = new Set(["delivered", "dropped", "skipped"]);
const isLaneId = (value: unknown): value is number =>
  Number.isSafeInteger(value) && (value as number) > 0;

/**
 * The broker's per-task messages to the supervisor (`lane-attempt`, `lane-ended`,
 * `delivered`: three a task) as {@linkcode FromBrokerSchema} takes them, or `undefined`: any
 * other message, or an invalid one (the schema then says why).
 */
export function quickFromBroker(value: unknown): FromBroker | undefined {
  if (!isPlainObject(value)) return undefined;
  switch (value.type) {
    case "lane-attempt": {
      const { id, attemptId, taskId, taskType } = value;
      if (!isLaneId(id) || !isString(attemptId) || !isString(taskId) || !isString(taskType)) {
        return undefined;
      }
      return { type: "lane-attempt", id, attemptId, taskId, taskType };
    }
    case "lane-ended": {
      const { id, attemptId, taskType, recycle } = value;
      if (
        !isLaneId(id) || !isString(attemptId) || !isString(taskType) ||
        (recycle !== undefined && recycle !== true)
      ) return undefined;
      return { type: "lane-ended", id, attemptId, taskType, ...(recycle ? { recycle } : {}) };
    }
    case "delivered": {
      const { taskId, how } = value;
      if (!isString(taskId) || !DELIVERED_HOW.has(how)) return undefined;
      return { type: "delivered", taskId, how: how as "delivered" | "dropped" | "skipped" };
    }
    default:
      return undefined;
  }
}
setQuickCheck(FromBrokerSchema, quickFromBroker);

const OUTCOME_STATUSES: ReadonlySet<unknown> = new Set([
  "COMPLETED",
  "FAILED",
  "FAILED_WITH_TERMINAL_ERROR",
]);

/**
 * An executor's `outcome` over its lane as {@linkcode FromLaneSchema} takes it (its outcome as
 * {@linkcode OutcomeSchema}, unknown fields dropped), or `undefined`: any other message, or an
 * invalid one (the schema then says why). The broker reads one a task from an executor, whose
 * lines it trusts no more than the schema does.
 */
export function quickLaneOutcome(value: unknown): FromLane | undefined {
  if (!isPlainObject(value) || value.type !== "outcome" || !isString(value.attemptId)) {
    return undefined;
  }
  const { traceparent, recycle } = value;
  if (
    (traceparent !== undefined && !(isString(traceparent) && traceparent.length <= 100)) ||
    (recycle !== undefined && recycle !== true)
  ) return undefined;
  const outcome = value.outcome;
  if (!isPlainObject(outcome)) return undefined;
  const { status, outputData, reasonForIncompletion, stale, publishedRef, durationMs } = outcome;
  if (
    !OUTCOME_STATUSES.has(status) || typeof stale !== "boolean" ||
    !isFiniteNumber(durationMs) || durationMs < 0 ||
    (outputData !== undefined && !isPlainObject(outputData)) ||
    (reasonForIncompletion !== undefined && !isString(reasonForIncompletion)) ||
    (publishedRef !== undefined && !isString(publishedRef))
  ) return undefined;
  return {
    type: "outcome",
    attemptId: value.attemptId,
    outcome: {
      status: status as WireOutcome["status"],
      stale,
      durationMs,
      ...(outputData === undefined ? {} : { outputData: { ...outputData } }),
      ...(reasonForIncompletion === undefined ? {} : { reasonForIncompletion }),
      ...(publishedRef === undefined ? {} : { publishedRef }),
    },
    ...(traceparent === undefined ? {} : { traceparent }),
    ...(recycle === undefined ? {} : { recycle }),
  };
}
setQuickCheck(FromLaneSchema, quickLaneOutcome);

/** Parses one line against `schema`; throws a `TypeError` naming the problem. */
export function decodeLine<T>(schema: z.ZodType<T>, line: string): T {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new TypeError(`protocol: not JSON: ${line.slice(0, 200)}`, { cause: error });
  }
  const parsed = checkMessage(schema, value);
  if (!parsed.success) {
    throw new TypeError(
      `protocol: invalid message: ${z.prettifyError(parsed.error)}; line: ${line.slice(0, 200)}`,
    );
  }
  return parsed.data;
}

/**
 * A byte source read into a buffer (`Deno.stdin`): a child reads its messages this way, half
 * the CPU per message of `Deno.stdin.readable` (measured: 20 against 40 us per message in a
 * ping-pong between two processes), whose byte stream adds its own promise hops per chunk.
 */
export interface ByteReader {
  read(buffer: Uint8Array): Promise<number | null>;
}

/** `source` behind the part of a stream reader that {@linkcode readMessages} uses. */
function bufferReader(source: ByteReader): {
  read(): Promise<{ done: true; value?: undefined } | { done: false; value: Uint8Array }>;
  releaseLock(): void;
} {
  const buffer = new Uint8Array(64 * 1024);
  return {
    async read() {
      const n = await source.read(buffer);
      return n === null ? { done: true } : { done: false, value: buffer.subarray(0, n) };
    },
    releaseLock() {},
  };
}

/**
 * Reads JSON-line messages from a byte stream (or a {@linkcode ByteReader}) until it ends. Invalid lines go to `onInvalid`
 * and are skipped. The stream is released (not cancelled) when the consumer stops early.
 *
 * @example
 * ```ts
 * const lines = ReadableStream.from(['{"type":"drain"}\n{"type":"shut', 'down"}\n'])
 *   .pipeThrough(new TextEncoderStream());
 * for await (const msg of readMessages(lines, ToBrokerSchema)) {
 *   msg.type; // "drain", then "shutdown"
 * }
 * ```
 */
export async function* readMessages<T>(
  stream: ReadableStream<Uint8Array> | ByteReader,
  schema: z.ZodType<T>,
  onInvalid: (error: TypeError, line: string) => void = () => {},
): AsyncGenerator<T> {
  // A plain read loop: two TransformStreams (text decoding, line splitting) cost several
  // promise hops per chunk, on every hop of every task.
  const reader = stream instanceof ReadableStream ? stream.getReader() : bufferReader(stream);
  const decoder = new TextDecoder();
  let buffer = "";
  const parse = (line: string): { ok: true; message: T } | { ok: false } => {
    if (line.endsWith("\r")) line = line.slice(0, -1);
    if (line.trim() === "") return { ok: false };
    try {
      return { ok: true, message: decodeLine(schema, line) };
    } catch (error) {
      onInvalid(error as TypeError, line);
      return { ok: false };
    }
  };
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let start = 0;
      let index: number;
      while ((index = buffer.indexOf("\n", start)) >= 0) {
        const parsed = parse(buffer.slice(start, index));
        start = index + 1;
        if (parsed.ok) {
          // Keep the rest for the next round before handing control to the consumer.
          const rest = buffer.slice(start);
          buffer = rest;
          start = 0;
          yield parsed.message;
        }
      }
      buffer = buffer.slice(start);
    }
    buffer += decoder.decode();
    if (buffer !== "") {
      const parsed = parse(buffer);
      if (parsed.ok) yield parsed.message;
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * Message types nothing waits for (`assigned` only retargets lease extensions, `delivered`
 * and `metrics` are informational): {@linkcode MessageWriter} holds them back for up to `lazyDelayMs` so
 * they share the next write instead of costing a write (and a wake-up of the reader) each.
 * They are never reordered: held messages go out first in the next write.
 */
export const LAZY_MESSAGE_TYPES: ReadonlySet<string> = new Set([
  "assigned",
  "delivered",
  "metrics",
  "lane-attempt",
  "lane-ended",
]);

/** A byte sink written synchronously (`Deno.stdout`): far cheaper per message than a stream. */
export interface SyncWriter {
  writeSync(bytes: Uint8Array): number;
}

/** A byte sink written without a stream (a `Deno.Conn`): one op per write, no stream queue. */
export interface AsyncWriter {
  write(bytes: Uint8Array): Promise<number>;
}

/** Options of {@linkcode MessageWriter}. */
export interface MessageWriterOptions {
  /** Longest hold of a lazy message (see {@linkcode LAZY_MESSAGE_TYPES}), ms. @default 20 */
  lazyDelayMs?: number;
}

/**
 * Writes messages to a byte stream one at a time, in order. After the stream fails (the
 * other side died) `send` resolves to `false` instead of throwing, so senders need no
 * try/catch for a peer that is already gone; the owner learns of the death from its exit.
 *
 * Messages sent in the same turn, or while an earlier write is in flight, go out together in
 * one write; lazy ones ({@linkcode LAZY_MESSAGE_TYPES}) wait for the next write or
 * `lazyDelayMs`, whichever comes first.
 *
 * @example
 * ```ts
 * const chunks: Uint8Array[] = [];
 * const sink = new WritableStream<Uint8Array>({ write: (chunk) => void chunks.push(chunk) });
 * const out = new MessageWriter<ToBroker>(sink);
 * await out.send({ type: "drain" }); // one JSON line written
 * await out.close();
 * ```
 */
export class MessageWriter<T> {
  #writer: WritableStreamDefaultWriter<Uint8Array> | SyncWriter | AsyncWriter;
  /** Whether `#writer` is a {@linkcode AsyncWriter} (written until every byte is taken). */
  readonly #partialWrites: boolean;
  #chain: Promise<boolean> = Promise.resolve(true);
  /** Messages waiting for the next write; sends until it starts join it (one syscall). */
  #batch: Uint8Array[] | undefined;
  /** Lazy messages held back, and what their senders wait on. */
  #held: Uint8Array[] = [];
  #heldDone: PromiseWithResolvers<boolean> | undefined;
  #heldTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #lazyDelayMs: number;
  #broken = false;

  /**
   * `stream` is a WritableStream, a {@linkcode SyncWriter} such as `Deno.stdout` (each
   * write then blocks until the bytes are in the pipe, as `console.log` does), or an
   * {@linkcode AsyncWriter} such as a `Deno.Conn`.
   */
  constructor(
    stream: WritableStream<Uint8Array> | SyncWriter | AsyncWriter,
    options: MessageWriterOptions = {},
  ) {
    this.#writer = stream instanceof WritableStream ? stream.getWriter() : stream;
    this.#partialWrites = !(stream instanceof WritableStream) && !("writeSync" in stream);
    this.#lazyDelayMs = options.lazyDelayMs ?? 20;
  }

  /** Whether a write has failed (the reader is gone). */
  get broken(): boolean {
    return this.#broken;
  }

  /** Queues `message`; resolves `true` once written, `false` if the stream is broken. */
  send(message: T): Promise<boolean> {
    const bytes = encodeMessage(message);
    const type = (message as { type?: unknown } | null)?.type;
    if (this.#batch === undefined && typeof type === "string" && LAZY_MESSAGE_TYPES.has(type)) {
      this.#held.push(bytes);
      this.#heldDone ??= Promise.withResolvers<boolean>();
      this.#heldTimer ??= setTimeout(() => {
        this.#heldTimer = undefined;
        this.#startBatch();
      }, this.#lazyDelayMs);
      return this.#heldDone.promise;
    }
    const batch = this.#batch ?? this.#startBatch();
    batch.push(bytes);
    return this.#chain;
  }

  /** Opens the next write, held lazy messages first. */
  #startBatch(): Uint8Array[] {
    const batch = this.#held.splice(0);
    this.#batch = batch;
    const heldDone = this.#heldDone;
    this.#heldDone = undefined;
    clearTimeout(this.#heldTimer);
    this.#heldTimer = undefined;
    this.#chain = this.#chain.then(async () => {
      if (this.#batch === batch) this.#batch = undefined;
      if (this.#broken || batch.length === 0) return !this.#broken;
      try {
        const bytes = batch.length === 1 ? batch[0]! : concatBytes(batch);
        const writer = this.#writer;
        if ("writeSync" in writer) {
          let written = 0;
          while (written < bytes.length) written += writer.writeSync(bytes.subarray(written));
        } else if (this.#partialWrites) {
          let written = 0;
          const sink = writer as AsyncWriter;
          while (written < bytes.length) written += await sink.write(bytes.subarray(written));
        } else await (writer as WritableStreamDefaultWriter<Uint8Array>).write(bytes);
        return true;
      } catch {
        this.#broken = true;
        return false;
      }
    });
    if (heldDone) void this.#chain.then(heldDone.resolve);
    return batch;
  }

  /** Closes the stream after pending writes (held lazy ones included); never throws. */
  async close(): Promise<void> {
    if (this.#held.length > 0) this.#startBatch();
    await this.#chain;
    if ("writeSync" in this.#writer || this.#partialWrites) return;
    try {
      await (this.#writer as WritableStreamDefaultWriter<Uint8Array>).close();
    } catch {
      // already closed or broken
    }
  }
}

/**
 * Sends structured messages (thread mode's `postMessage`, no bytes) in batches: messages sent
 * in the same turn go out together in one `post`, lazy ones ({@linkcode LAZY_MESSAGE_TYPES})
 * wait for the next batch or `lazyDelayMs`, whichever comes first, and nothing is reordered.
 * Every post wakes the other thread (a write to its event loop's wake-up pipe), so one per
 * turn instead of one per message is what the batch saves.
 *
 * @example
 * ```ts
 * const posted: unknown[][] = [];
 * const out = new MessageBatcher<{ type: string }>((batch) => posted.push(batch));
 * out.send({ type: "metrics" }); // lazy: held
 * out.send({ type: "outcome" });
 * await Promise.resolve();
 * posted; // [[{ type: "metrics" }, { type: "outcome" }]]
 * ```
 */
export class MessageBatcher<T> {
  readonly #post: (batch: T[]) => void;
  readonly #lazyDelayMs: number;
  #pending: T[] = [];
  /** A flush is queued for the end of this turn. */
  #queued = false;
  #heldTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(post: (batch: T[]) => void, options: MessageWriterOptions = {}) {
    this.#post = post;
    this.#lazyDelayMs = options.lazyDelayMs ?? 20;
  }

  /** Queues `message` for the next post. */
  send(message: T): void {
    this.#pending.push(message);
    const type = (message as { type?: unknown } | null)?.type;
    if (!this.#queued && typeof type === "string" && LAZY_MESSAGE_TYPES.has(type)) {
      this.#heldTimer ??= setTimeout(() => this.flush(), this.#lazyDelayMs);
      return;
    }
    if (this.#queued) return;
    this.#queued = true;
    queueMicrotask(() => this.flush());
  }

  /** Posts what is pending now (held lazy messages included). */
  flush(): void {
    this.#queued = false;
    clearTimeout(this.#heldTimer);
    this.#heldTimer = undefined;
    if (this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    this.#post(batch);
  }
}
