/**
 * The broker: the only process that talks to Conductor. It polls in batches sized by the
 * credits the supervisor grants (one per free executor slot, so it never holds more tasks
 * than slots), extends the lease of every task it holds, answers fence look-ups, and
 * delivers results until the server takes them.
 *
 * Per task type it polls the type's Conductor domain, asks for no more tasks than the type's
 * per-host concurrency leaves room for (a task counts until its result reached the server),
 * and polls adaptively or at the type's fixed interval ({@linkcode TaskPolling}).
 *
 * The broker is transport-agnostic: messages in through {@linkcode Broker.handle}, messages
 * out through the `emit` callback; {@linkcode runBrokerProcess} connects both to a channel
 * (channel.ts): JSON lines over the broker process's stdin/stdout in process mode,
 * structured-clone messages of its Worker in thread mode.
 *
 * @module
 */
import { getLogger, type Logger } from "../log/logger.ts";
import type { ConductorApi, Task, TaskResult } from "../conductor/api.ts";
import { ConductorNotFoundError, isUnreachableConductorError } from "../conductor/errors.ts";
import { type DeliveryOutcome, ResultDelivery } from "../conductor/delivery.ts";
import { backoffDelayMs, retry } from "../util/retry.ts";
import { BrokerMetrics, type BrokerObserver } from "./broker_metrics.ts";
import { withTraceparent } from "../otel/trace.ts";
import { sleep } from "../util/sleep.ts";
import {
  type BrokerInit,
  BrokerInitSchema,
  type FromBroker,
  type ToBroker,
  ToBrokerSchema,
  type WireOutcome,
  wireTask,
} from "./protocol.ts";
import { type OpenChannel, receiveInit } from "./channel.ts";
import { LaneRouter } from "./lane_router.ts";

/** Backoff of a fence look-up made again while Conductor cannot be reached (`#taskForFence`). */
const FENCE_RETRY_BASE_MS = 250;
const FENCE_RETRY_MAX_MS = 2_000;

/** Lifecycle of a broker. */
export type BrokerState = "starting" | "running" | "draining" | "stopped" | "failed";

/** What the broker needs of result delivery (see `ResultDelivery` in src/conductor). */
export interface ResultSink {
  /**
   * Delivers `result`; with `nextTask`, in a call whose answer may be the next task of the
   * type (the outcome's `next`, see `ResultDelivery.deliver`); `owned`: the broker hands the
   * object over and never changes it (no copy needed).
   */
  deliver(
    result: TaskResult,
    options?: { nextTask?: boolean; owned?: boolean },
  ): Promise<DeliveryOutcome>;
  /**
   * Called when a poll succeeds after failed ones (the broker extends every held task's lease
   * then, too) and when a lease extension succeeds: results waiting out a backoff because
   * Conductor could not be reached go now (see `ResultDelivery.serverAnswered`).
   */
  serverAnswered?(): void;
}

/** How the broker polls one task type (every field optional). */
export interface TaskPolling {
  /** Conductor task domain the polls carry (`domain=`); unset = the default queue. */
  domain?: string | undefined;
  /**
   * Most tasks of this type held at once (polled, running, or with a result not yet taken by
   * the server). @default unlimited: the credits decide
   */
  concurrency?: number | undefined;
  /**
   * Fixed-interval polling: polls never wait on the server (timeout 0) and, after one that
   * found fewer tasks than it asked for, the next waits this long. @default adaptive polling
   */
  pollIntervalMs?: number | undefined;
  /** Most tasks one poll asks for. @default the free credits */
  batchSize?: number | undefined;
}

/** What a broker does with one task type now: a snapshot for operators' metrics. */
export interface TaskTypeState {
  taskType: string;
  /** `paused` types are never polled (`PERAGO_TASK_PAUSED`). */
  state: "polling" | "paused";
  domain: string | undefined;
  /** Tasks held (polled and not yet delivered); 0 for a paused type. */
  inFlight: number;
  /** The per-host cap, when one applies. */
  concurrency: number | undefined;
}

/** Options of {@linkcode Broker}. */
export interface BrokerOptions {
  /** Conductor. */
  api: ConductorApi;
  /** Delivers final results (retrying until the server takes them). */
  delivery: ResultSink;
  /**
   * Take the next task of an adaptive type in the call that delivers a result
   * (`update-v2`), when a credit is free for it and the type has room: one request per task
   * instead of a result update and a poll while tasks keep coming.
   * @default whether `api` has `updateTaskV2`
   */
  nextTaskWithResult?: boolean;
  /**
   * Task types to poll, round-robin. May be empty (every served type paused): the broker
   * then polls nothing until it is drained.
   */
  taskTypes: readonly string[];
  /** How to poll each type (domain, per-host concurrency, interval, batch); by type name. */
  taskPolling?: Readonly<Record<string, TaskPolling>>;
  /** Served task types that are paused: never polled, reported by {@linkcode Broker.taskTypeStates}. */
  pausedTaskTypes?: readonly string[];
  /** Worker id used when polling (`<prefix>Broker`). */
  workerId: string;
  /** Messages to the supervisor. */
  emit: (message: FromBroker) => void;
  /** Long-poll time of one batch poll, ms. Conductor rejects more than 5000. @default 5000 */
  pollTimeoutMs?: number;
  /**
   * Wait of a "short" poll, ms: while tasks keep coming (the last poll of a type came back
   * full) the broker polls `count` = free slots with this timeout instead of long-polling.
   * @default 0
   */
  shortPollTimeoutMs?: number;
  /**
   * Short polls in flight at once while tasks flow (a credit that arrives during a poll
   * starts its own instead of waiting a round trip). Long polls are one at a time.
   * @default 2
   */
  maxConcurrentPolls?: number;
  /** First backoff after a failed poll, ms. @default 250 */
  errorBackoffMs?: number;
  /** Longest backoff after failed polls, ms. @default 10000 */
  maxErrorBackoffMs?: number;
  /** Shortest lease-extension interval, ms (guards tiny responseTimeoutSeconds). @default 200 */
  minLeaseIntervalMs?: number;
  /** responseTimeoutSeconds assumed when a polled Task has none. @default 600 */
  defaultResponseTimeoutSeconds?: number;
  /** Told what polls, lease extensions and deliveries did (metrics, readiness). */
  observer?: BrokerObserver;
  logger?: Logger;
}

interface Held {
  task: Task;
  /** The polled type it counts against. */
  pollType: PollType;
  workerId: string;
  timer: ReturnType<typeof setInterval>;
  /** Made by the first lease extension (most tasks end before one: no abort to pay for). */
  heartbeat: AbortController | undefined;
  /**
   * Whether a lease extension is under way (the client retries a refused one for seconds): a
   * tick meanwhile sends none, so a struggling server gets one call per task at a time.
   */
  extending: boolean;
}

/** The broker's book of one polled task type. */
interface PollType {
  readonly name: string;
  readonly domain: string | undefined;
  readonly concurrency: number | undefined;
  readonly pollIntervalMs: number | undefined;
  readonly batchSize: number | undefined;
  /** Held tasks of this type, plus delivered results the server has not yet taken. */
  inFlight: number;
  /** Tasks asked for by polls of this type in flight. */
  reserved: number;
  /** Polls of this type in flight. */
  polls: number;
  /** Fixed-interval types: no poll before this time (epoch ms). */
  readyAt: number;
}

/** What one run of the poll loop tracks. */
interface PollLoop {
  readonly inFlight: Set<Promise<void>>;
  /** Credits promised to the polls in flight. */
  reserved: number;
  longPolls: number;
  /** Failed polls in a row (they grow the backoff). */
  errors: number;
  /** Long polls answered empty at once, in a row (they grow the idle pause). */
  idle: number;
  /** The adaptive types, which share the long-poll timeout. */
  readonly adaptiveCount: number;
}

/** How many more tasks of `type` this host may hold (its per-host concurrency). */
function roomOf(type: PollType): number {
  return type.concurrency === undefined
    ? Infinity
    : type.concurrency - type.inFlight - type.reserved;
}

/**
 * Polls Conductor for the supervisor's executors.
 *
 * @example
 * ```ts ignore
 * // `api` is a ConductorApi, `delivery` its ResultDelivery, `out` the MessageWriter to the
 * // supervisor (runBrokerRole in roles.ts wires the real ones).
 * const broker = new Broker({ api, delivery, taskTypes: ["sum"], workerId: "sumBroker",
 *   emit: (msg) => out.send(msg) });
 * const done = broker.run();
 * broker.handle({ type: "credit", n: 2 }); // two free slots: poll up to two tasks
 * // The supervisor forwards each task to an executor and reports the results back.
 * broker.handle({ type: "drain" });
 * await done; // every held task reported and delivered
 * ```
 */
export class Broker {
  readonly #api: ConductorApi;
  readonly #delivery: ResultSink;
  readonly #nextTaskWithResult: boolean;
  /** The poll loop's book while it runs (a delivery that takes the next task reserves in it). */
  #loop: PollLoop | undefined;
  readonly #types: readonly PollType[];
  readonly #pausedTaskTypes: readonly string[];
  readonly #workerId: string;
  readonly #emit: (message: FromBroker) => void;
  readonly #pollTimeoutMs: number;
  readonly #shortPollTimeoutMs: number;
  readonly #maxConcurrentPolls: number;
  readonly #errorBackoffMs: number;
  readonly #maxErrorBackoffMs: number;
  readonly #minLeaseIntervalMs: number;
  readonly #defaultResponseTimeoutSeconds: number;
  readonly #observer: BrokerObserver | undefined;
  readonly #log: Logger;

  #state: BrokerState = "starting";
  #credits = 0;
  #typeIndex = 0;
  /** Task types whose last poll came back full (tasks keep coming: poll short, in batches). */
  readonly #flowing: Set<string>;
  readonly #held = new Map<string, Held>();
  readonly #deliveries = new Set<Promise<void>>();
  /** Aborted when draining starts: wakes the poll loop's waits (never an in-flight poll). */
  readonly #draining = new AbortController();
  /** Aborted on shutdown: stops everything, in-flight polls and heartbeats included. */
  readonly #stopping = new AbortController();
  #wake: (() => void) | undefined;
  #ran = false;

  constructor(options: BrokerOptions) {
    const pollTimeoutMs = options.pollTimeoutMs ?? 5000;
    if (!(pollTimeoutMs >= 0 && pollTimeoutMs <= 5000)) {
      throw new RangeError("Broker: pollTimeoutMs must be within 0..5000 (Conductor's limit)");
    }
    this.#api = options.api;
    this.#delivery = options.delivery;
    this.#nextTaskWithResult = options.nextTaskWithResult ?? options.api.updateTaskV2 !== undefined;
    this.#types = options.taskTypes.map((name) => {
      const polling = options.taskPolling?.[name] ?? {};
      for (const [key, value] of Object.entries(polling)) {
        if (key === "domain" || value === undefined) continue;
        if (!(Number.isInteger(value) && (value as number) > 0)) {
          throw new RangeError(`Broker: taskPolling.${name}.${key} must be a positive integer`);
        }
      }
      return {
        name,
        domain: polling.domain,
        concurrency: polling.concurrency,
        pollIntervalMs: polling.pollIntervalMs,
        batchSize: polling.batchSize,
        inFlight: 0,
        reserved: 0,
        polls: 0,
        readyAt: 0,
      };
    });
    this.#pausedTaskTypes = [...(options.pausedTaskTypes ?? [])];
    this.#flowing = new Set(
      this.#types.filter((type) => type.pollIntervalMs === undefined).map((type) => type.name),
    );
    this.#workerId = options.workerId;
    this.#emit = options.emit;
    this.#pollTimeoutMs = pollTimeoutMs;
    const shortPollTimeoutMs = options.shortPollTimeoutMs ?? 0;
    if (!(shortPollTimeoutMs >= 0 && shortPollTimeoutMs <= pollTimeoutMs)) {
      throw new RangeError(
        `Broker: shortPollTimeoutMs must be within 0..pollTimeoutMs (${pollTimeoutMs}), ` +
          `got ${shortPollTimeoutMs}`,
      );
    }
    const maxConcurrentPolls = options.maxConcurrentPolls ?? 2;
    if (!(Number.isInteger(maxConcurrentPolls) && maxConcurrentPolls >= 1)) {
      throw new RangeError(
        `Broker: maxConcurrentPolls must be a positive integer, got ${maxConcurrentPolls}`,
      );
    }
    this.#shortPollTimeoutMs = shortPollTimeoutMs;
    this.#maxConcurrentPolls = maxConcurrentPolls;
    this.#errorBackoffMs = options.errorBackoffMs ?? 250;
    this.#maxErrorBackoffMs = options.maxErrorBackoffMs ?? 10_000;
    this.#minLeaseIntervalMs = options.minLeaseIntervalMs ?? 200;
    this.#defaultResponseTimeoutSeconds = options.defaultResponseTimeoutSeconds ?? 600;
    this.#observer = options.observer;
    this.#log = options.logger ?? getLogger("runtime", "broker");
  }

  /** The current lifecycle state. */
  get state(): BrokerState {
    return this.#state;
  }

  /** Tasks polled and not yet reported (running or waiting for an executor). */
  get held(): number {
    return this.#held.size;
  }

  /** Credits not yet used by a poll. */
  get credits(): number {
    return this.#credits;
  }

  /**
   * Every served task type with its state (`polling` or `paused`), domain, tasks in flight
   * and per-host cap: what an operators' metrics exporter reports (a paused type stays
   * visible, at 0 in flight).
   */
  taskTypeStates(): TaskTypeState[] {
    return [
      ...this.#types.map((type) => ({
        taskType: type.name,
        state: "polling" as const,
        domain: type.domain,
        inFlight: type.inFlight,
        concurrency: type.concurrency,
      })),
      ...this.#pausedTaskTypes.map((taskType) => ({
        taskType,
        state: "paused" as const,
        domain: undefined,
        inFlight: 0,
        concurrency: undefined,
      })),
    ];
  }

  #setState(next: BrokerState): void {
    if (this.#state === next) return;
    this.#log.info("broker {from} -> {to}", { from: this.#state, to: next });
    this.#state = next;
  }

  /** Handles one message from the supervisor (`init` is the transport's business). */
  handle(message: ToBroker): void {
    switch (message.type) {
      case "credit":
        this.#credits += message.n;
        this.#wake?.();
        return;
      case "fence":
        // Joins the attempt's trace: the look-up's request is a span of the attempt.
        void withTraceparent(
          message.traceparent,
          () => this.#fence(message.requestId, message.taskId),
        );
        return;
      case "result":
        // The freed slot's credit first: delivering this result may take the next task.
        if (message.credit !== undefined) this.#credits += message.credit;
        this.#track(
          withTraceparent(
            message.traceparent,
            () => this.#report(message.taskId, message.workerId, message.outcome),
          ),
        );
        return;
      case "abandon":
        this.#track(this.#report(message.taskId, message.workerId, {
          status: "FAILED",
          reasonForIncompletion: message.reason,
          stale: false,
          durationMs: 0,
        }));
        return;
      case "assigned": {
        const held = this.#held.get(message.taskId);
        if (held) held.workerId = message.workerId;
        return;
      }
      case "drain":
        this.drain();
        return;
      case "shutdown":
        this.shutdown();
        return;
      case "init":
        return;
    }
  }

  /** Stops polling (an in-flight poll finishes and its tasks are handed out). Idempotent. */
  drain(): void {
    if (this.#state === "stopped" || this.#state === "failed") return;
    if (!this.#draining.signal.aborted) {
      this.#setState("draining");
      this.#draining.abort();
      this.#wake?.();
    }
  }

  /**
   * Stops at once: aborts polls and lease extensions; `run()` returns after pending deliveries
   * settle. Held tasks are left to Conductor's response timeout. Idempotent.
   */
  shutdown(): void {
    this.drain();
    if (!this.#stopping.signal.aborted) this.#stopping.abort();
    this.#wake?.();
  }

  /**
   * Polls until drained, then waits until every held task has been reported and every
   * result delivered, emits `drained`, and resolves. Call once.
   */
  async run(): Promise<void> {
    if (this.#ran) throw new Error("Broker.run: already called; a broker runs once");
    this.#ran = true;
    this.#setState("running");
    if (this.#pausedTaskTypes.length > 0) {
      this.#log.info("paused (not polled): {paused}", {
        paused: this.#pausedTaskTypes.join(", "),
      });
    }
    if (this.#types.length === 0) {
      this.#log.warn("every served task type is paused: polling nothing until stopped");
    }
    try {
      await this.#pollLoop();
      // Draining: wait for the held tasks' outcomes (or a shutdown). A delivery in flight
      // may still hand over a next task it asked for before the drain: it is held too.
      while (
        (this.#held.size > 0 || this.#deliveries.size > 0) && !this.#stopping.signal.aborted
      ) {
        await this.#waitForChange();
      }
      while (this.#deliveries.size > 0) await Promise.allSettled([...this.#deliveries]);
      for (const taskId of [...this.#held.keys()]) this.#release(taskId);
      this.#emit({ type: "drained" });
      this.#setState("stopped");
    } catch (error) {
      this.#setState("failed");
      throw error;
    }
  }

  #waitForChange(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = () => {
        this.#wake = undefined;
        resolve();
      };
    });
  }

  /**
   * The poll loop. Conductor holds a batch poll until `count` tasks are queued or the timeout
   * passes, so a long poll for more tasks than are queued waits the whole timeout.
   *
   * Adaptive types (the default): while tasks keep coming (some adaptive type's last poll
   * came back full) the broker polls `count` = free slots with a short timeout, up to
   * `maxConcurrentPolls` at once; once every one came back short it long-polls with `count`
   * 1, one long poll at a time, so the first task to arrive returns at once, and then goes
   * back to short polls for the remaining slots.
   *
   * Fixed-interval types poll with timeout 0 and, after a poll that came back short, wait
   * their interval. Every poll asks for at most the free credits, the type's batch size and
   * the room its per-host concurrency leaves, so the broker never holds more tasks than it
   * may run.
   */
  async #pollLoop(): Promise<void> {
    const loop: PollLoop = this.#loop = {
      inFlight: new Set(),
      reserved: 0,
      longPolls: 0,
      errors: 0,
      idle: 0,
      adaptiveCount: Math.max(
        1,
        this.#types.filter((type) => type.pollIntervalMs === undefined).length,
      ),
    };
    while (!this.#draining.signal.aborted) {
      const free = this.#credits - loop.reserved;
      const next = free > 0
        ? this.#choosePoll(loop, free)
        : { type: undefined, wakeAt: Infinity } as const;
      if (next.type === undefined) {
        await this.#waitForWork(loop, next.wakeAt);
        continue;
      }
      this.#startPoll(loop, next.type, next.short, next.count);
    }
    // Draining: a poll in flight finishes and its tasks are handed out, never aborted.
    while (loop.inFlight.size > 0) await Promise.all([...loop.inFlight]);
    this.#loop = undefined;
  }

  /** Waits for a change (credits, a result), a poll to end, or `wakeAt` (a type's interval). */
  async #waitForWork(loop: PollLoop, wakeAt: number): Promise<void> {
    const change = this.#waitForChange();
    const timer = wakeAt === Infinity ? undefined : new AbortController();
    const waits: Promise<unknown>[] = [change, ...loop.inFlight];
    if (timer) waits.push(sleep(wakeAt - Date.now(), timer.signal).catch(() => {}));
    await Promise.race(waits);
    timer?.abort();
  }

  /** Starts one poll; its credits stay reserved until it ends. */
  #startPoll(loop: PollLoop, type: PollType, short: boolean, count: number): void {
    loop.reserved += count;
    type.reserved += count;
    type.polls++;
    if (!short) loop.longPolls++;
    const poll: Promise<void> = this.#pollOnce(loop, type, short, count).finally(() => {
      loop.reserved -= count;
      type.reserved -= count;
      type.polls--;
      if (!short) loop.longPolls--;
      loop.inFlight.delete(poll);
    });
    loop.inFlight.add(poll);
  }

  /** The next type to poll (round-robin) and how, or when to look again. */
  #choosePoll(
    loop: PollLoop,
    free: number,
  ): { type: PollType | undefined; short: boolean; count: number; wakeAt: number } {
    const now = Date.now();
    const flowing = this.#types.some((type) =>
      type.pollIntervalMs === undefined && this.#flowing.has(type.name) && roomOf(type) > 0
    );
    let wakeAt = Infinity;
    for (let i = 0; i < this.#types.length; i++) {
      const index = (this.#typeIndex + i) % this.#types.length;
      const type = this.#types[index]!;
      const space = Math.min(free, roomOf(type), type.batchSize ?? Infinity);
      if (space <= 0) continue;
      let short: boolean;
      if (type.pollIntervalMs !== undefined) {
        if (type.polls > 0) continue;
        if (type.readyAt > now) {
          wakeAt = Math.min(wakeAt, type.readyAt);
          continue;
        }
        short = true;
      } else if (flowing) {
        short = true;
      } else {
        // One long poll at a time, and only while nothing else is in flight.
        if (loop.longPolls > 0 || loop.inFlight.size > 0) continue;
        short = false;
      }
      if (short && loop.inFlight.size - loop.longPolls >= this.#maxConcurrentPolls) continue;
      this.#typeIndex = index + 1;
      return { type, short, count: short ? space : 1, wakeAt };
    }
    return { type: undefined, short: false, count: 0, wakeAt };
  }

  /** One batch poll of `type` for `count` tasks; the tasks are held and handed out. */
  async #pollOnce(loop: PollLoop, type: PollType, short: boolean, count: number): Promise<void> {
    const taskType = type.name;
    const timeoutMs = short
      ? this.#shortPollTimeoutMs
      : Math.floor(this.#pollTimeoutMs / loop.adaptiveCount);
    const started = Date.now();
    let tasks: Task[];
    try {
      tasks = await this.#api.pollBatch(taskType, {
        count,
        timeoutMs,
        workerId: this.#workerId,
        ...(type.domain === undefined ? {} : { domain: type.domain }),
        signal: this.#stopping.signal,
      });
      if (loop.errors > 0) {
        this.#log.info("poll of {taskType} succeeded after {errors} failure(s)", {
          taskType,
          errors: loop.errors,
        });
        loop.errors = 0;
        this.#delivery.serverAnswered?.();
        // Each held task's lease is extended now, not at its next tick: that may be a third
        // of its response timeout away, past the server's deadline after a long outage.
        for (const taskId of this.#held.keys()) void this.#extendLease(taskId);
      }
    } catch (error) {
      if (this.#stopping.signal.aborted) return;
      this.#observer?.poll(taskType, { error }, Date.now() - started);
      return await this.#pollFailed(loop, type, error);
    }
    this.#observer?.poll(taskType, { tasks: tasks.length }, Date.now() - started);
    if (tasks.length > count) {
      this.#log.error("poll of {taskType} returned {got} tasks for count {count}", {
        taskType,
        got: tasks.length,
        count,
      });
    }
    const full = tasks.length >= count;
    if (type.pollIntervalMs !== undefined) {
      type.readyAt = full ? 0 : Date.now() + type.pollIntervalMs;
    } else if (full) this.#flowing.add(taskType);
    else this.#flowing.delete(taskType);
    // The poll reserved `count` credits; a server that hands over more (logged above) gets
    // them held too (dropping them would leave them to time out), but they spend no credit.
    this.#spendCredits(Math.min(tasks.length, count));
    if (tasks.length > 0) {
      loop.idle = 0;
      for (const task of tasks) this.#hold(task, type);
      this.#emit({ type: "tasks", tasks: tasks.map(wireTask) });
      return;
    }
    // Nothing queued. A short poll hands over to a long poll (no pause needed); a long
    // poll that a server answered at once gets a short, growing pause so an idle broker
    // does not spin.
    if (!short && Date.now() - started <= timeoutMs / 2) {
      loop.idle++;
      await sleep(Math.min(1000, 25 * 2 ** Math.min(loop.idle, 6)), this.#draining.signal)
        .catch(() => {});
    }
  }

  /** A failed poll: back to one poll at a time, and a growing pause before the next. */
  async #pollFailed(loop: PollLoop, type: PollType, error: unknown): Promise<void> {
    loop.errors++;
    this.#flowing.clear();
    const delayMs = Math.max(
      this.#errorBackoffMs,
      backoffDelayMs(loop.errors, this.#errorBackoffMs * 2, this.#maxErrorBackoffMs),
    );
    this.#log.warn("poll of {taskType} failed ({errors} in a row): {message}", {
      taskType: type.name,
      domain: type.domain,
      errors: loop.errors,
      message: (error as Error).message,
      retryInMs: delayMs,
    });
    await sleep(delayMs, this.#draining.signal).catch(() => {});
  }

  #hold(task: Task, pollType: PollType): void {
    const seconds = task.responseTimeoutSeconds > 0
      ? task.responseTimeoutSeconds
      : this.#defaultResponseTimeoutSeconds;
    const intervalMs = Math.max(this.#minLeaseIntervalMs, Math.floor((seconds * 1000) / 3));
    pollType.inFlight++;
    const held: Held = {
      task,
      pollType,
      workerId: this.#workerId,
      heartbeat: undefined,
      extending: false,
      timer: setInterval(() => void this.#extendLease(task.taskId), intervalMs),
    };
    this.#held.set(task.taskId, held);
    // debug: the executor logs every attempt's start and end at info (no noisy logs).
    this.#log.debug("holding task {taskId} ({taskType}); lease extended every {intervalMs} ms", {
      taskId: task.taskId,
      taskType: task.taskType,
      workflowInstanceId: task.workflowInstanceId,
      intervalMs,
    });
  }

  async #extendLease(taskId: string): Promise<void> {
    const held = this.#held.get(taskId);
    if (!held || held.extending || this.#stopping.signal.aborted) return;
    const heartbeat = held.heartbeat ??= new AbortController();
    held.extending = true;
    try {
      await this.#api.updateTask(
        {
          workflowInstanceId: held.task.workflowInstanceId,
          taskId,
          status: "IN_PROGRESS",
          extendLease: true,
          workerId: held.workerId,
        },
        AbortSignal.any([heartbeat.signal, this.#stopping.signal]),
      );
      this.#observer?.leaseExtension(held.task.taskType, undefined);
      // A busy worker may not poll at all: its heartbeats are then the news that Conductor
      // answers again.
      this.#delivery.serverAnswered?.();
    } catch (error) {
      if (heartbeat.signal.aborted || this.#stopping.signal.aborted) return;
      this.#observer?.leaseExtension(held.task.taskType, error);
      this.#log.warn("lease extension of task {taskId} failed: {message}", {
        taskId,
        message: (error as Error).message,
      });
    } finally {
      held.extending = false;
    }
  }

  #release(taskId: string): Held | undefined {
    const held = this.#held.get(taskId);
    if (!held) return undefined;
    clearInterval(held.timer);
    held.heartbeat?.abort();
    this.#held.delete(taskId);
    this.#wake?.();
    return held;
  }

  /**
   * The task as Conductor has it now, for a fence. While Conductor cannot be reached, the
   * look-up is made again (backoff up to 2 s) for as long as the task's lease may still hold
   * (its response timeout): an attempt that still owns its task is not failed by a blip (and
   * its retry budget not spent), and one whose task the server timed out meanwhile learns it
   * from the answer. Any other error, or the time up, is the look-up's error.
   */
  async #taskForFence(taskId: string): Promise<Task> {
    const held = this.#held.get(taskId);
    const seconds = held !== undefined && held.task.responseTimeoutSeconds > 0
      ? held.task.responseTimeoutSeconds
      : this.#defaultResponseTimeoutSeconds;
    return await retry(() => this.#api.getTask(taskId, this.#stopping.signal), {
      attempts: Infinity,
      baseDelayMs: FENCE_RETRY_BASE_MS,
      maxDelayMs: FENCE_RETRY_MAX_MS,
      deadline: Date.now() + seconds * 1000,
      isRetryable: isUnreachableConductorError,
      signal: this.#stopping.signal,
      onRetry: (error, attempt) => {
        if (attempt > 1) return;
        this.#log.warn(
          "fence look-up of task {taskId}: {message}; asking again until Conductor answers " +
            "(up to {seconds} s)",
          { taskId, message: (error as Error).message, seconds },
        );
      },
    });
  }

  async #fence(requestId: number, taskId: string): Promise<void> {
    try {
      const task = await this.#taskForFence(taskId);
      this.#observer?.fenceLookup(undefined);
      this.#emit({
        type: "fence-result",
        requestId,
        state: {
          status: task.status,
          workflowInstanceId: task.workflowInstanceId,
          taskId: task.taskId,
          retryCount: task.retryCount,
        },
      });
    } catch (error) {
      this.#observer?.fenceLookup(error);
      this.#emit({
        type: "fence-result",
        requestId,
        error: (error as Error).message,
        ...(error instanceof ConductorNotFoundError ? { notFound: true } : {}),
      });
    }
  }

  #track(promise: Promise<void>): void {
    this.#deliveries.add(promise);
    void promise.finally(() => {
      this.#deliveries.delete(promise);
      this.#wake?.();
    });
  }

  async #report(taskId: string, workerId: string, outcome: WireOutcome): Promise<void> {
    const held = this.#release(taskId);
    if (!held) {
      this.#log.error("outcome for task {taskId} that the broker does not hold; ignored", {
        taskId,
      });
      return;
    }
    try {
      await this.#reportHeld(held, taskId, workerId, outcome);
    } finally {
      // Only now may another task of the type be polled: the server has this one's end time,
      // so a per-host cap holds in the server's own start and end times too.
      held.pollType.inFlight--;
      this.#wake?.();
    }
  }

  async #reportHeld(
    held: Held,
    taskId: string,
    workerId: string,
    outcome: WireOutcome,
  ): Promise<void> {
    if (outcome.stale) {
      this.#log.warn("task {taskId}: attempt was stale (fenced off); result not reported", {
        taskId,
        workflowInstanceId: held.task.workflowInstanceId,
      });
      this.#observer?.result(held.task.taskType, outcome.status, "skipped", {});
      this.#emit({ type: "delivered", taskId, how: "skipped" });
      return;
    }
    const result: TaskResult = {
      workflowInstanceId: held.task.workflowInstanceId,
      taskId,
      status: outcome.status,
      workerId,
      ...(outcome.outputData === undefined ? {} : { outputData: outcome.outputData }),
      ...(outcome.reasonForIncompletion === undefined
        ? {}
        : { reasonForIncompletion: outcome.reasonForIncompletion }),
    };
    const started = Date.now();
    const takeNext = this.#reserveNext(held.pollType);
    let next: Task | undefined;
    try {
      // `result` is made here and never changed: handed over, not copied.
      const delivered = await this.#delivery.deliver(result, { nextTask: takeNext, owned: true });
      if (delivered.kind === "delivered") next = delivered.next;
      const how = delivered.kind === "gone" ? "dropped" : "delivered";
      this.#observer?.result(held.task.taskType, result.status, how, {
        attempts: delivered.attempts,
        durationMs: Date.now() - started,
      });
      // A delivered result is routine (the executor logged the attempt's end at info).
      const level = how === "delivered" ? "debug" : "info";
      this.#log[level]("task {taskId}: {status} result {how}", {
        taskId,
        workflowInstanceId: result.workflowInstanceId,
        status: result.status,
        how,
      });
      this.#emit({ type: "delivered", taskId, how });
    } catch (error) {
      // Not silent: the task will time out on the server and be retried.
      this.#log.error("task {taskId}: {status} result NOT delivered: {message}", {
        taskId,
        workflowInstanceId: result.workflowInstanceId,
        status: result.status,
        message: (error as Error).message,
      });
      this.#observer?.result(held.task.taskType, result.status, "dropped", {
        durationMs: Date.now() - started,
        error,
      });
      this.#emit({ type: "delivered", taskId, how: "dropped" });
    } finally {
      if (takeNext) this.#nextTaken(held.pollType, next, Date.now() - started);
    }
  }

  /**
   * Whether the delivery of a result of `type` starting now may take the next task: then
   * one free credit (and the type's room) is reserved for it, as for a poll of one task.
   * Never while draining or for fixed-interval types (their polls keep their own rhythm).
   */
  #reserveNext(type: PollType): boolean {
    const loop = this.#loop;
    if (
      !this.#nextTaskWithResult || loop === undefined || this.#draining.signal.aborted ||
      type.pollIntervalMs !== undefined || this.#credits - loop.reserved <= 0
    ) return false;
    // The task being delivered still counts in `inFlight`; the server ends it before it
    // hands over the next one.
    if (type.concurrency !== undefined && roomOf(type) + 1 <= 0) return false;
    loop.reserved++;
    type.reserved++;
    return true;
  }

  /**
   * Spends `n` credits on tasks that arrived. Every arrival was reserved first (a poll
   * reserves its `count`, a delivery that takes the next task one credit), and reservations
   * never pass the credits (`#credits - loop.reserved` is the free count), so the count never
   * goes below zero: a negative one is a bug in that book-keeping, thrown rather than hidden.
   */
  #spendCredits(n: number): void {
    if (n > this.#credits) {
      throw new Error(
        `Broker: ${n} task(s) arrived with only ${this.#credits} credit(s) left; every ` +
          "arrival must be covered by a reserved credit (a bug in the broker's book-keeping)",
      );
    }
    this.#credits -= n;
  }

  /** The delivery that reserved a credit ended: hold and hand out the task it brought. */
  #nextTaken(type: PollType, next: Task | undefined, durationMs: number): void {
    const loop = this.#loop;
    if (loop !== undefined) loop.reserved--;
    type.reserved--;
    this.#observer?.poll(type.name, { tasks: next === undefined ? 0 : 1 }, durationMs);
    if (next !== undefined) {
      this.#spendCredits(1); // the credit #reserveNext reserved for it
      this.#flowing.add(type.name);
      this.#hold(next, type);
      this.#emit({ type: "tasks", tasks: [wireTask(next)] });
    }
    this.#wake?.();
  }
}

/** What {@linkcode runBrokerProcess} needs from its host (the CLI wires the real ones). */
export interface BrokerProcessDeps {
  /** Opens the channel to the supervisor (stdio of a process, or a Worker's messages). */
  open: OpenChannel;
  /** Sets up this process's logging; returns its disposer. */
  setupLogging: (init: BrokerInit) => Promise<{ dispose(): Promise<void> }>;
  /** Makes the Conductor client. */
  makeConductor: (init: BrokerInit) => ConductorApi;
}

/**
 * The life of a broker process: read `init`, poll and relay until drained and told to shut
 * down. Resolves with the exit code: 0 after a drain, 1 for a bad start, 2 when the
 * supervisor went away (stdin closed: polling stops, pending results are still delivered).
 */
export async function runBrokerProcess(deps: BrokerProcessDeps): Promise<number> {
  const log = getLogger("runtime", "broker");
  const out = deps.open<ToBroker, FromBroker>(ToBrokerSchema, (error) => {
    log.warn("ignored an invalid protocol line: {message}", { message: error.message });
  });
  const messages = out.messages;
  const init = await receiveInit(out, "broker", BrokerInitSchema);
  if (init === undefined) return 1;
  const logging = await deps.setupLogging(init);
  try {
    const api = deps.makeConductor(init);
    const observer = new BrokerMetrics((message) => void out.send(message));
    // With lanes, tasks go to the executors over their sockets (lane_router.ts).
    let router: LaneRouter | undefined;
    const toSupervisor = (message: FromBroker) => void out.send(message);
    const broker: Broker = new Broker({
      observer,
      api,
      delivery: new ResultDelivery({ api }),
      taskTypes: init.taskTypes,
      ...(init.taskPolling === undefined ? {} : { taskPolling: init.taskPolling }),
      ...(init.pausedTaskTypes === undefined ? {} : { pausedTaskTypes: init.pausedTaskTypes }),
      workerId: init.workerId,
      pollTimeoutMs: init.pollTimeoutMs,
      emit: (message) => router ? router.fromBroker(message) : toSupervisor(message),
    });
    if (init.lanes !== undefined) {
      router = new LaneRouter({
        paths: init.lanes,
        toBroker: (message) => broker.handle(message),
        toSupervisor,
      });
    }
    const running = broker.run();
    await out.send({ type: "ready", pid: Deno.pid });
    let shutdown = false;
    for await (const message of messages) {
      if (router) router.fromSupervisor(message);
      else broker.handle(message);
      if (message.type === "shutdown") {
        shutdown = true;
        break;
      }
    }
    if (!shutdown) {
      log.warn("broker: the supervisor went away; stopping (held tasks will time out)");
      broker.drain();
      broker.shutdown();
    }
    await running;
    router?.close();
    observer.flush();
    await out.close();
    return shutdown ? 0 : 2;
  } finally {
    await logging.dispose();
  }
}
