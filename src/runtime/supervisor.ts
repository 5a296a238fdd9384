/**
 * The supervisor (process mode): holds the workspace-root lock, sweeps orphaned attempt
 * directories at start, every GC interval and at stop, spawns the broker and N executors,
 * relays protocol messages between them, restarts dead executors with backoff, replaces at
 * once an executor that ended on purpose (recycled: its attempt directory went to the warm
 * pool, claimable only once it has ended), and drains on shutdown.
 *
 * ```
 * starting --(lock, sweep, children ready)--> running --shutdown()--> draining --> stopped
 *     \                                          \--broker died / fatal--> failed
 * ```
 * `run()` resolves with the process exit code: 0 after a clean drain; 1 when the runtime
 * failed (broker died, children could not start) or the drain was forced.
 *
 * @module
 */
import { getLogger, type Logger } from "../log/logger.ts";
import { type ChildExit, type ChildHandle, describeExit } from "./_child.ts";
import { DispatchBook, type DispatchedAttempt } from "./dispatch_book.ts";
import { type StagingBranchRef, sweepAttemptDirs, type SweepReport } from "./gc.ts";
import { acquireSupervisorLock, type SupervisorLock } from "./lock.ts";
import type { SupervisorStatus } from "./telemetry.ts";
import type {
  ExecutorInit,
  FromBroker,
  FromExecutor,
  ToBroker,
  ToExecutor,
  WireTask,
} from "./protocol.ts";
import {
  type ChildSpawner,
  type CompiledSupervisorOptions,
  compileSupervisorOptions,
  type SupervisorOptions,
} from "./supervisor_options.ts";

export {
  type ChildSpawner,
  type CompiledSupervisorOptions,
  compileSupervisorOptions,
  type SupervisorOptions,
};

/** Lifecycle of the supervisor. */
export type SupervisorState = "starting" | "running" | "draining" | "stopped" | "failed";

/**
 * How far the stop of the children went: while `up`, a child's exit is unexpected; the
 * executors are stopped first (their exits expected), then the broker too.
 */
type ChildrenStop = "up" | "executors-stopping" | "all-stopping";

/**
 * The supervisor's lifecycle as one value; its `phase` is the public
 * {@linkcode SupervisorState} once `run()` was called (`idle` reads as `starting`):
 *
 * ```
 * idle --run()--> starting --> running --> draining --> stopped
 *                     \            \           \--> failed
 * ```
 * While draining or failed, `children` says how far the stop of the children went.
 * `brokerExit` is how the broker process ended, once it has: before the stop reached the
 * broker (`all-stopping`), that exit is what fails the runtime.
 */
type Lifecycle =
  | { readonly phase: "idle" }
  | { readonly phase: "starting" | "running" | "stopped"; readonly brokerExit?: ChildExit }
  | {
    readonly phase: "draining" | "failed";
    readonly children: ChildrenStop;
    readonly brokerExit?: ChildExit;
  };

interface Slot {
  index: number;
  workerId: string;
  child: ChildHandle<FromExecutor, ToExecutor> | undefined;
  ready: boolean;
  startedAt: number;
  failures: number;
  attempt: DispatchedAttempt | undefined;
  /** Lanes: the id of the executor's lane (a new one per executor process). */
  laneId: number | undefined;
  /**
   * The executor said it ends after its outcome (its directory went to the warm pool): the
   * slot takes no task, and its exit is a planned replacement, not a failure.
   */
  recycling: boolean;
  /**
   * The replacement of a recycled executor is starting: the slot counts as up for the health
   * probes (a planned replacement must not flap `/readyz`), never as free.
   */
  replacing: boolean;
  /** Kills the executor when the attempt outlives its budget and grace. */
  watchdog: ReturnType<typeof setTimeout> | undefined;
  restartTimer: ReturnType<typeof setTimeout> | undefined;
  exited: Promise<void>;
}

/** Whether a slot counts as up: its executor is ready, or a recycled one's replacement starts. */
function isUp(slot: Slot): boolean {
  return (slot.child !== undefined && slot.ready) || slot.replacing;
}

/** A timer as a promise that can be cleared (so no stray timer outlives the supervisor). */
function timer(ms: number): { promise: Promise<void>; clear(): void } {
  let handle: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<void>((resolve) => {
    handle = setTimeout(resolve, ms);
  });
  return { promise, clear: () => clearTimeout(handle) };
}

/** Races `promises` against a timeout; `"timeout"` when it passed first. */
async function within<T>(ms: number, ...promises: Promise<T>[]): Promise<T | "timeout"> {
  const t = timer(ms);
  try {
    return await Promise.race([...promises, t.promise.then(() => "timeout" as const)]);
  } finally {
    t.clear();
  }
}

/**
 * Runs the process-mode runtime.
 *
 * @example
 * ```ts ignore
 * // startRuntime (start.ts) builds the complete options from the configuration.
 * const supervisor = new Supervisor({
 *   concurrency: 2, workspaceRoot, workspaceGcTtlMs: 86_400_000, workspaceGcIntervalMs: 3_600_000,
 *   shutdownForceKillAfterMs: undefined, brokerInit, executorInit: (slot) => executorInit(slot),
 *   spawner,
 * });
 * Deno.addSignalListener("SIGTERM", () => supervisor.shutdown());
 * const code = await supervisor.run();
 * ```
 */
export class Supervisor {
  readonly #o: CompiledSupervisorOptions;
  readonly #log: Logger;
  #life: Lifecycle = { phase: "idle" };
  #lock: SupervisorLock | undefined;
  #broker: ChildHandle<FromBroker, ToBroker> | undefined;
  #brokerReady = Promise.withResolvers<void>();
  #brokerDrained = Promise.withResolvers<void>();
  #brokerExited = Promise.withResolvers<ChildExit>();
  readonly #slots: Slot[] = [];
  /** The relayed executors' queue, credits and fence routes (over lanes: the broker's). */
  readonly #book = new DispatchBook<Slot>({
    idle: () => this.#idleSlots(),
    // Over lanes the broker's router grants them.
    mayGrant: () => this.#life.phase === "running" && this.#o.lanePaths === undefined,
    assign: (slot, attempt, task) => this.#assign(slot, attempt, task),
  });
  #laneSeq = 0;
  #gcTimer: ReturnType<typeof setInterval> | undefined;
  #gcRunning: Promise<unknown> = Promise.resolve();
  #shutdownRequested = Promise.withResolvers<void>();
  #forceRequested = Promise.withResolvers<void>();
  #shutdownCalls = 0;
  #failure: string | undefined;
  #failed = Promise.withResolvers<void>();

  constructor(options: SupervisorOptions) {
    this.#o = compileSupervisorOptions(options);
    this.#log = options.logger ?? getLogger("runtime", "supervisor");
    // Unhandled-rejection safety: these are awaited in some paths only.
    this.#failed.promise.catch(() => {});
  }

  /** The current lifecycle state. */
  get state(): SupervisorState {
    return this.#life.phase === "idle" ? "starting" : this.#life.phase;
  }

  /** Pids of the live executors by slot (tests kill them). */
  get executorPids(): (number | undefined)[] {
    return this.#slots.map((slot) => slot.child?.pid);
  }

  /** Pid of the broker. */
  get brokerPid(): number | undefined {
    return this.#broker?.pid;
  }

  /** What the health probes need: state, broker alive, executors up. */
  get status(): SupervisorStatus {
    return {
      state: this.state,
      brokerAlive: this.#broker !== undefined && !("brokerExit" in this.#life),
      executorsUp: this.#slots.filter(isUp).length,
      executorSlots: this.#o.concurrency,
    };
  }

  /** Tells the telemetry how many executors are up and idle. */
  #slotsChanged(): void {
    const up = this.#slots.filter(isUp).length;
    this.#o.telemetry?.slotsChanged(up, this.#idleSlots().length);
  }

  /** How far the stop of the children went (`up` outside draining and failed). */
  get #children(): ChildrenStop {
    return "children" in this.#life ? this.#life.children : "up";
  }

  /** Marks how far the stop of the children went (draining or failed; else a no-op). */
  #stopping(children: ChildrenStop): void {
    if ("children" in this.#life) this.#life = { ...this.#life, children };
  }

  #setState(next: SupervisorState, detail?: string): void {
    const from = this.state;
    if (this.#life.phase === next) return;
    const brokerExit = "brokerExit" in this.#life ? { brokerExit: this.#life.brokerExit } : {};
    this.#life = next === "draining" || next === "failed"
      ? { phase: next, children: "up", ...brokerExit }
      : { phase: next, ...brokerExit };
    const message = detail === undefined
      ? "supervisor {from} -> {to}"
      : "supervisor {from} -> {to}: {detail}";
    if (next === "failed") this.#log.error(message, { from, to: next, detail });
    else this.#log.info(message, { from, to: next, detail });
  }

  /**
   * Asks for a stop. The first call drains (stop polling, finish running attempts, deliver
   * their results); a second call forces (kill executors, report their attempts FAILED).
   */
  shutdown(): void {
    this.#shutdownCalls++;
    if (this.#shutdownCalls === 1) {
      this.#log.info("shutdown requested: draining (a second signal forces)");
      this.#shutdownRequested.resolve();
    } else {
      this.#log.warn("second shutdown request: forcing");
      this.#forceRequested.resolve();
    }
  }

  /** Whether this supervisor took the workspace root's lock (it ran there, even if it stopped). */
  get tookLock(): boolean {
    return this.#lock !== undefined;
  }

  /** Runs until stopped; resolves with the exit code. Call once. */
  async run(): Promise<number> {
    if (this.#life.phase !== "idle") {
      throw new Error("Supervisor.run: already called; a supervisor runs once");
    }
    this.#life = { phase: "starting" };
    try {
      this.#lock = await acquireSupervisorLock(this.#o.workspaceRoot);
      this.#log.info("supervisor lock taken: {path}", { path: this.#lock.path });
      await this.#sweep(0, "startup");
      await this.#startChildren();
      if (this.#failure !== undefined) return await this.#stopFailed();
      this.#setState("running", `${this.#o.concurrency} executor(s)`);
      this.#grantCredits();
      this.#gcTimer = setInterval(() => {
        this.#gcRunning = this.#gcRunning.then(() =>
          this.#sweep(this.#o.workspaceGcTtlMs, "periodic")
        );
      }, this.#o.workspaceGcIntervalMs);
      await Promise.race([this.#shutdownRequested.promise, this.#failed.promise]);
      if (this.#failure !== undefined) return await this.#stopFailed();
      return await this.#drain();
    } catch (error) {
      this.#failure ??= (error as Error).message;
      this.#setState("failed", this.#failure);
      await this.#killAll();
      throw error;
    } finally {
      if (this.#gcTimer !== undefined) clearInterval(this.#gcTimer);
      this.#clearSlotTimers();
      await this.#gcRunning.catch(() => {});
      if (this.#lock) {
        await this.#sweep(0, "final");
        await this.#lock.release();
      }
    }
  }

  async #sweep(ttlMs: number, why: string): Promise<SweepReport | undefined> {
    try {
      const inProcess = this.#o.childrenInProcess && why === "periodic";
      const report = await sweepAttemptDirs(this.#o.workspaceRoot, {
        ttlMs,
        // Thread mode: the owner tokens are in the workers; a live worker's dir is kept, a
        // dead one's is collected when it exits (#onExecutorExit), the rest at the final sweep.
        ...(inProcess ? { isTokenActive: () => true } : {}),
      });
      if (report.removed.length > 0 || report.errors.length > 0) {
        this.#log.info("{why} workspace sweep: removed {removed}, errors {errors}", {
          why,
          removed: report.removed.length,
          errors: report.errors.length,
          paths: report.removed,
          failures: report.errors.map((e) => `${e.path}: ${(e.error as Error).message}`),
        });
      }
      await this.#deleteStaging(report.stagingBranches);
      return report;
    } catch (error) {
      this.#log.warn("{why} workspace sweep failed: {message}", {
        why,
        message: (error as Error).message,
      });
      return undefined;
    }
  }

  /** Deletes the staging branches collected attempt dirs named (their owners died). */
  async #deleteStaging(refs: readonly StagingBranchRef[]): Promise<void> {
    const remove = this.#o.deleteStagingBranch;
    if (remove === undefined) return;
    for (const ref of refs) {
      try {
        await remove(ref);
        this.#log.info("deleted staging branch {branch} of {repository} left by a dead attempt", {
          ...ref,
        });
      } catch (error) {
        this.#log.warn(
          "could not delete staging branch {branch} of {repository} left by a dead attempt: " +
            "{message}; the next attempt of its task deletes it, or delete it by hand",
          { ...ref, message: (error as Error).message },
        );
      }
    }
  }

  #fail(reason: string): void {
    if (this.#failure !== undefined) return;
    this.#failure = reason;
    this.#failed.resolve();
  }

  // ---- start ----

  async #startChildren(): Promise<void> {
    const broker = this.#o.spawner.broker();
    this.#broker = broker;
    this.#log.info("broker started (pid {pid})", { pid: broker.pid });
    // Its exit is handled once its last messages are read (see #spawnExecutor).
    void Promise.all([broker.exit, this.#pumpBroker(broker)])
      .then(([exit]) => this.#onBrokerExit(exit));
    await broker.send({ type: "init", init: this.#o.brokerInit });
    const timeout = this.#o.startTimeoutMs;
    const started = await within(
      timeout,
      this.#brokerReady.promise.then(() => true),
      this.#failed.promise.then(() => false),
    );
    if (started !== true) {
      this.#fail(this.#failure ?? `the broker did not become ready within ${timeout} ms`);
      return;
    }
    for (let index = 0; index < this.#o.concurrency; index++) {
      const init = this.#o.executorInit(index);
      const slot: Slot = {
        index,
        workerId: init.workerId,
        child: undefined,
        ready: false,
        startedAt: 0,
        failures: 0,
        attempt: undefined,
        laneId: undefined,
        recycling: false,
        replacing: false,
        restartTimer: undefined,
        watchdog: undefined,
        exited: Promise.resolve(),
      };
      this.#slots.push(slot);
      this.#spawnExecutor(slot);
    }
  }

  #spawnExecutor(slot: Slot): void {
    slot.restartTimer = undefined;
    let child: ChildHandle<FromExecutor, ToExecutor>;
    try {
      child = this.#o.spawner.executor(slot.index);
    } catch (error) {
      this.#log.error("executor {workerId} could not be spawned: {message}", {
        workerId: slot.workerId,
        message: (error as Error).message,
      });
      slot.replacing = false;
      this.#slotsChanged();
      this.#scheduleRestart(slot);
      return;
    }
    slot.child = child;
    slot.ready = false;
    slot.recycling = false;
    slot.startedAt = Date.now();
    const lane = this.#openLane(slot);
    this.#log.info("executor {workerId} started (slot {slot}, pid {pid})", {
      workerId: slot.workerId,
      slot: slot.index,
      pid: child.pid,
    });
    // Its exit is handled once its last messages are read: a Worker's exit event, or a
    // process's status, can come before the pump has taken the outcome sent just before it.
    slot.exited = Promise.all([child.exit, this.#pumpExecutor(slot, child)])
      .then(([exit]) => this.#onExecutorExit(slot, child, exit));
    void child.send({
      type: "init",
      init: { ...this.#o.executorInit(slot.index), ...(lane === undefined ? {} : { lane }) },
    });
  }

  /** Lanes: a new lane for the executor just spawned in `slot`, opened at the broker. */
  #openLane(slot: Slot): ExecutorInit["lane"] {
    const path = this.#o.lanePaths?.[slot.index];
    if (path === undefined) return undefined;
    const id = ++this.#laneSeq;
    const secret = Array.from(
      crypto.getRandomValues(new Uint8Array(32)),
      (byte) => byte.toString(16).padStart(2, "0"),
    ).join("");
    slot.laneId = id;
    void this.#broker?.send({
      type: "lane-open",
      slot: slot.index,
      id,
      workerId: slot.workerId,
      secret,
    });
    return { path, id, secret };
  }

  /** The slot whose current executor has lane `id`. */
  #laneSlot(id: number): Slot | undefined {
    return this.#slots.find((slot) => slot.laneId === id);
  }

  // ---- broker ----

  async #pumpBroker(broker: ChildHandle<FromBroker, ToBroker>): Promise<void> {
    try {
      for await (const message of broker.messages) this.#onBrokerMessage(message);
    } catch (error) {
      this.#log.warn("reading the broker's messages failed: {message}", {
        message: (error as Error).message,
      });
    }
  }

  #onBrokerMessage(message: FromBroker): void {
    switch (message.type) {
      case "ready":
        this.#brokerReady.resolve();
        return;
      case "tasks":
        this.#book.tasksArrived(message.tasks);
        this.#slotsChanged();
        return;
      case "fence-result": {
        const routed = this.#book.fenceAnswer(message);
        if (routed?.executor.child) void routed.executor.child.send(routed.answer);
        return;
      }
      case "delivered":
        this.#o.telemetry?.resultLeft();
        this.#log.debug("result of task {taskId}: {how}", {
          taskId: message.taskId,
          how: message.how,
        });
        return;
      case "metrics":
        this.#o.telemetry?.childReport("broker", message.records, message.contacts ?? []);
        return;
      case "drained":
        this.#brokerDrained.resolve();
        return;
      case "lane-attempt": {
        const slot = this.#laneSlot(message.id);
        this.#o.telemetry?.attemptStarted(message.taskType);
        if (slot === undefined) return;
        slot.attempt = {
          attemptId: message.attemptId,
          taskId: message.taskId,
          taskType: message.taskType,
        };
        this.#armWatchdog(slot, message.attemptId, message.taskType, message.taskId);
        this.#slotsChanged();
        return;
      }
      case "lane-ended": {
        this.#o.telemetry?.attemptEnded(message.taskType);
        this.#o.telemetry?.resultSent();
        const slot = this.#laneSlot(message.id);
        if (slot?.attempt?.attemptId !== message.attemptId) return;
        slot.attempt = undefined;
        if (message.recycle === true) slot.recycling = true;
        clearTimeout(slot.watchdog);
        this.#slotsChanged();
        return;
      }
      case "lane-lost": {
        const slot = this.#laneSlot(message.id);
        if (slot?.child === undefined) return;
        this.#log.error("killing executor {workerId} (pid {pid}): {reason}", {
          workerId: slot.workerId,
          pid: slot.child.pid,
          reason: message.reason,
        });
        slot.child.kill("SIGKILL");
        return;
      }
      case "fatal":
        this.#fail(`the broker failed: ${message.message}`);
        return;
    }
  }

  #onBrokerExit(exit: ChildExit): void {
    if (this.#life.phase !== "idle") this.#life = { ...this.#life, brokerExit: exit };
    this.#brokerExited.resolve(exit);
    if (this.#life.phase === "stopped" || this.#children === "all-stopping") return;
    const detail = `the broker exited unexpectedly (${
      describeExit(exit)
    }); stopping the runtime: without it nothing reaches Conductor`;
    this.#log.error(detail);
    this.#fail(detail);
  }

  // ---- executors ----

  async #pumpExecutor(slot: Slot, child: ChildHandle<FromExecutor, ToExecutor>): Promise<void> {
    try {
      for await (const message of child.messages) this.#onExecutorMessage(slot, child, message);
    } catch (error) {
      this.#log.warn("reading executor {workerId}'s messages failed: {message}", {
        workerId: slot.workerId,
        message: (error as Error).message,
      });
    }
  }

  #onExecutorMessage(
    slot: Slot,
    child: ChildHandle<FromExecutor, ToExecutor>,
    message: FromExecutor,
  ): void {
    if (slot.child !== child) return; // a message from a previous incarnation
    if (slot.laneId !== undefined && (message.type === "outcome" || message.type === "fence")) {
      // Over a lane these go to the broker only: on stdout they can only be written by task
      // code, and relayed they would reach the broker beside the lane's own book.
      this.#log.warn("executor {workerId} wrote a {type} message to its stdout; ignored", {
        workerId: slot.workerId,
        type: message.type,
      });
      return;
    }
    switch (message.type) {
      case "ready":
        slot.ready = true;
        slot.replacing = false;
        this.#log.info("executor {workerId} ready (pid {pid})", {
          workerId: slot.workerId,
          pid: message.pid,
        });
        this.#dispatch();
        this.#grantCredits();
        this.#slotsChanged();
        return;
      case "metrics":
        this.#o.telemetry?.childReport(slot.workerId, message.records, message.contacts ?? []);
        return;
      case "fence":
        void this.#broker?.send(this.#book.routeFence(slot, message));
        return;
      case "outcome": {
        const attempt = slot.attempt;
        if (!attempt || attempt.attemptId !== message.attemptId) {
          this.#log.error("executor {workerId} reported unknown attempt {attemptId}", {
            workerId: slot.workerId,
            attemptId: message.attemptId,
          });
          return;
        }
        slot.attempt = undefined;
        // Before the credits below: a recycling executor's slot is not free.
        if (message.recycle === true) slot.recycling = true;
        clearTimeout(slot.watchdog);
        this.#o.telemetry?.attemptEnded(attempt.taskType);
        this.#o.telemetry?.resultSent();
        // Queued tasks go to idle slots; the freed slot's credit goes with the result.
        const result = this.#book.settle(attempt, slot.workerId, message);
        this.#slotsChanged();
        void this.#broker?.send(result);
        return;
      }
      case "fatal":
        this.#log.error("executor {workerId} cannot start: {message}", {
          workerId: slot.workerId,
          message: message.message,
        });
        return;
    }
  }

  #onExecutorExit(
    slot: Slot,
    child: ChildHandle<FromExecutor, ToExecutor>,
    exit: ChildExit,
  ): void {
    if (slot.child !== child) return;
    slot.child = undefined;
    slot.ready = false;
    const attempt = slot.attempt;
    slot.attempt = undefined;
    clearTimeout(slot.watchdog);
    const expected = this.#life.phase === "draining" && this.#children !== "up";
    const laneId = slot.laneId;
    slot.laneId = undefined;
    const diedDuringAttempt = () =>
      `executor ${slot.workerId} (pid ${child.pid}) exited during the attempt ` +
      `(${describeExit(exit)})${this.#fatalV8Hint(exit)}; the attempt is reported FAILED so ` +
      "Conductor retries it";
    // Exited as it said it would, after its outcome, to free its warm pool directory. Over a
    // lane the outcome went to the broker, whose word may still be on its way: an executor
    // ends with code 0 only after a shutdown or a recycle, so that code says it.
    const cleanExit = exit.code === 0 && exit.signal === null;
    const recycled = laneId !== undefined
      ? cleanExit && (slot.recycling || !expected)
      : slot.recycling && !attempt && cleanExit;
    slot.recycling = false;
    slot.replacing = recycled && this.#restartsExecutors();
    this.#slotsChanged();
    if (recycled) {
      this.#o.telemetry?.executorRecycled();
      this.#log.info(
        slot.replacing
          ? "executor {workerId} (pid {pid}) recycled: its attempt directory went to the warm " +
            "pool; replacing it now"
          : "executor {workerId} (pid {pid}) recycled: its attempt directory went to the warm " +
            "pool; not replaced (draining)",
        { workerId: slot.workerId, pid: child.pid },
      );
    } else if (attempt) {
      const reason = diedDuringAttempt();
      this.#log.error(reason, { taskId: attempt.taskId });
      // Over a lane the broker reports it (unless its outcome arrived first): see below.
      if (laneId === undefined) {
        this.#o.telemetry?.attemptEnded(attempt.taskType);
        this.#o.telemetry?.resultSent();
        void this.#broker?.send({
          type: "abandon",
          taskId: attempt.taskId,
          workerId: slot.workerId,
          reason,
        });
      }
    } else if (!expected) {
      this.#log.warn("executor {workerId} (pid {pid}) exited ({exit})", {
        workerId: slot.workerId,
        pid: child.pid,
        exit: describeExit(exit),
      });
    }
    if (laneId !== undefined) {
      // The reason the broker reports the lane's attempt with, if one is still open there.
      void this.#broker?.send({ type: "lane-closed", id: laneId, reason: diedDuringAttempt() });
    }
    this.#collectDirsOf(slot.workerId, child.pid);
    if (!this.#restartsExecutors()) return;
    if (recycled) this.#spawnExecutor(slot); // planned: no backoff, not a restart
    else this.#scheduleRestart(slot);
  }

  /**
   * Collects what an executor that just exited left in the workspace root (its attempt
   * directories, and the staging branches their markers name), after any collection running.
   */
  #collectDirsOf(workerId: string, pid: number): void {
    const exitedAt = Date.now();
    this.#gcRunning = this.#gcRunning.then(async () => {
      const report = await sweepAttemptDirs(this.#o.workspaceRoot, {
        ttlMs: 0,
        onlyOwnerPid: pid,
        // A worker shares this process's pid: match its worker id, and only dirs made
        // before it died (never those of its restarted successor).
        ...(this.#o.childrenInProcess ? { onlyOwnerWorkerId: workerId, now: exitedAt } : {}),
      }).catch(() => undefined);
      if (report && report.removed.length > 0) {
        this.#log.info("collected {count} attempt dir(s) of executor {workerId}", {
          count: report.removed.length,
          workerId,
          paths: report.removed,
        });
      }
      if (report) await this.#deleteStaging(report.stagingBranches);
    });
  }

  /**
   * V8 ends a process that runs out of heap (or hits another fatal error) with SIGTRAP: name
   * the executors' heap limit so the reason says what to change.
   */
  #fatalV8Hint(exit: ChildExit): string {
    if (exit.signal !== "SIGTRAP" && exit.code !== 133) return "";
    const limit = this.#o.executorMaxHeapMb ?? 0;
    return limit > 0
      ? `: a fatal V8 error, most likely the task's memory passing the executor heap limit ` +
        `(PERAGO_EXECUTOR_MAX_HEAP_MB=${limit}); raise it if the task needs more`
      : ": a fatal V8 error, most likely the task running out of memory";
  }

  /**
   * A dead executor is restarted while running, and while draining with tasks queued (over
   * lanes the queue is the broker's: until the drain ends).
   */
  #restartsExecutors(): boolean {
    const { phase } = this.#life;
    if (phase === "running") return true;
    if (phase !== "draining") return false;
    return this.#o.lanePaths !== undefined ? this.#children === "up" : this.#book.queued > 0;
  }

  #scheduleRestart(slot: Slot): void {
    if (Date.now() - slot.startedAt >= this.#o.stableAfterMs) slot.failures = 0;
    const backoff = this.#o.restartBackoffMs;
    const delayMs = backoff[Math.min(slot.failures, backoff.length - 1)]!;
    slot.failures++;
    this.#log.info("restarting executor {workerId} in {delayMs} ms", {
      workerId: slot.workerId,
      delayMs,
    });
    slot.restartTimer = setTimeout(() => {
      if (this.#restartsExecutors()) {
        this.#o.telemetry?.executorRestarted();
        this.#spawnExecutor(slot);
      }
    }, delayMs);
  }

  // ---- slots and credits ----

  #idleSlots(): Slot[] {
    return this.#slots.filter((slot) =>
      slot.child && slot.ready && !slot.attempt && !slot.recycling
    );
  }

  #dispatch(): void {
    this.#book.dispatch();
    this.#slotsChanged();
  }

  /** The book's dispatch: `task` goes to the idle executor of `slot`. */
  #assign(slot: Slot, attempt: DispatchedAttempt, task: WireTask): void {
    const { attemptId, taskType } = attempt;
    slot.attempt = attempt;
    this.#o.telemetry?.attemptStarted(taskType);
    this.#armWatchdog(slot, attemptId, taskType, task.taskId);
    this.#log.debug("task {taskId} -> executor {workerId}", {
      taskId: task.taskId,
      workflowInstanceId: task.workflowInstanceId,
      workerId: slot.workerId,
    });
    void this.#broker?.send({ type: "assigned", taskId: task.taskId, workerId: slot.workerId });
    void slot.child?.send({ type: "attempt", attemptId, task });
  }

  #armWatchdog(slot: Slot, attemptId: string, taskType: string, taskId: string): void {
    clearTimeout(slot.watchdog);
    const budgetMs = this.#o.attemptBudgetMs?.(taskType) ?? 0;
    if (!(budgetMs > 0)) return;
    const graceMs = this.#o.attemptKillGraceMs ?? Math.min(30_000, Math.max(5_000, budgetMs));
    slot.watchdog = setTimeout(() => {
      if (slot.attempt?.attemptId !== attemptId) return;
      this.#log.error(
        "executor {workerId} is still in task {taskId} {graceMs} ms past its " +
          "timeout.seconds ({budgetMs} ms) although the attempt was aborted: killing it " +
          "(the task ignores ctx.signal or blocks its event loop)",
        { workerId: slot.workerId, taskId, budgetMs, graceMs },
      );
      slot.child?.kill("SIGKILL");
    }, budgetMs + graceMs);
  }

  /** Grants the broker one credit per idle executor not already covered. */
  #grantCredits(): void {
    const free = this.#book.claimFreeCredits();
    if (free > 0) void this.#broker?.send({ type: "credit", n: free });
  }

  // ---- stop ----

  async #drain(): Promise<number> {
    this.#setState("draining", "stop polling, finish running attempts, deliver results");
    void this.#broker?.send({ type: "drain" });
    const forceAfter = this.#o.shutdownForceKillAfterMs;
    const outcome = await within(
      forceAfter ?? 2 ** 31 - 1,
      this.#brokerDrained.promise.then(() => "drained" as const),
      this.#forceRequested.promise.then(() => "forced" as const),
      this.#failed.promise.then(() => "failed" as const),
    );
    if (outcome === "failed") return await this.#stopFailed();
    if (outcome !== "drained") {
      const why = outcome === "timeout"
        ? `PERAGO_SHUTDOWN_FORCE_KILL_AFTER (${forceAfter} ms) passed`
        : "a second signal arrived";
      return await this.#forceStop(why);
    }
    await this.#stopChildren();
    this.#setState("stopped", "drained");
    return 0;
  }

  /** Every result is delivered: tell every child to exit and wait for them. */
  async #stopChildren(): Promise<void> {
    this.#stopping("all-stopping");
    this.#clearSlotTimers();
    for (const slot of this.#slots) void slot.child?.send({ type: "shutdown" });
    void this.#broker?.send({ type: "shutdown" });
    const all = Promise.all([
      ...this.#slots.map((slot) => slot.exited),
      this.#brokerExited.promise,
    ]);
    if (await within(10_000, all) === "timeout") {
      this.#log.warn("children did not exit within 10 s of shutdown; killing them");
      await this.#killAll();
    }
  }

  async #forceStop(why: string): Promise<number> {
    this.#log.error("forcing the stop: {why}; killing executors", { why });
    if (this.#children === "up") this.#stopping("executors-stopping");
    this.#clearSlotTimers();
    for (const slot of this.#slots) slot.child?.kill("SIGKILL");
    await Promise.all(this.#slots.map((slot) => slot.exited)); // abandons are sent on exit
    if (this.#o.lanePaths !== undefined) {
      void this.#broker?.send({
        type: "abandon-queued",
        reason: `not started: the worker was stopped (${why})`,
      });
    }
    for (const task of this.#book.takeQueued()) {
      this.#o.telemetry?.resultSent();
      void this.#broker?.send({
        type: "abandon",
        taskId: task.taskId,
        workerId: "",
        reason: `not started: the worker was stopped (${why})`,
      });
    }
    const grace = this.#o.forcedBrokerGraceMs;
    await within<unknown>(grace, this.#brokerDrained.promise, this.#brokerExited.promise);
    this.#stopping("all-stopping");
    void this.#broker?.send({ type: "shutdown" });
    if (await within(5_000, this.#brokerExited.promise) === "timeout") {
      this.#broker?.kill("SIGKILL");
    }
    this.#setState("stopped", `forced: ${why}`);
    return 1;
  }

  /** Clears every slot's restart timer and watchdog (nothing restarts or kills after a stop). */
  #clearSlotTimers(): void {
    for (const slot of this.#slots) {
      clearTimeout(slot.restartTimer);
      clearTimeout(slot.watchdog);
    }
  }

  async #stopFailed(): Promise<number> {
    this.#setState("failed", this.#failure);
    await this.#killAll();
    return 1;
  }

  async #killAll(): Promise<void> {
    this.#stopping("all-stopping");
    this.#clearSlotTimers();
    for (const slot of this.#slots) slot.child?.kill("SIGKILL");
    this.#broker?.kill("SIGKILL");
    await within<unknown>(
      5_000,
      Promise.all([
        ...this.#slots.map((slot) => slot.exited),
        this.#broker ? this.#brokerExited.promise : Promise.resolve(),
      ]),
    );
  }
}
