/**
 * Executor lanes, the broker's side (process mode): each executor slot has a Unix socket of
 * its own on which the broker listens; the executor connects to it once its tasks are
 * loaded, and from then on its attempts, fence look-ups and outcomes go over it, never
 * through the supervisor. A task then costs two hops between processes (the attempt to the
 * executor, its outcome back) instead of four (each through the supervisor), and the
 * supervisor is not woken per task.
 *
 * The router sits between the {@linkcode Broker} and the broker process's channel to the
 * supervisor and does for the lanes what the supervisor does for relayed executors, with the
 * same {@linkcode DispatchBook}: it keeps the tasks the broker polled in a queue, hands each
 * to an idle executor, grants the broker one credit per idle executor not already covered (so
 * it never holds more tasks than free slots), passes each outcome to the broker as a result
 * with the credit its slot frees, and reports the attempt of an executor that went away
 * FAILED.
 *
 * Executors run untrusted task code, so a lane trusts its executor with nothing else:
 * - a connection counts only after its first line proves the lane: the lane's id and its
 *   secret, which only the supervisor (`lane-open`, before the executor starts) and that
 *   executor (its `init`, on its stdin) know; a new secret per executor process. A wrong or
 *   late hello, or a second connection to a lane, is closed unanswered;
 * - each slot's socket is its own path, and, run from source, the executor's permission flags
 *   grant it that path only, so no executor can reach, remove or replace another slot's
 *   socket; one that removed or replaced its own is listened on afresh before its successor
 *   starts. A compiled binary's executors all hold the baked union (every socket in the
 *   workspace root's lane directory): there one could stand in for another slot's lane, and
 *   gain only what its own lane gives it (see lane_dir.ts);
 * - an outcome counts only for the attempt the lane was given (any other is ignored and
 *   logged), a fence look-up only for that attempt's task (any other is answered with an
 *   error, never asked of Conductor), and lease extensions and results carry the lane's own
 *   worker id, so an executor can neither complete, extend nor fence another's task.
 *
 * The supervisor still starts, watches and restarts the executors: it opens each lane before
 * the executor starts (`lane-open`), and closes it when the executor exits (`lane-closed`,
 * after which the lane's last bytes are read, so an outcome sent just before a planned exit
 * still counts). The router tells it of each attempt (`lane-attempt`, `lane-ended`) for its
 * watchdog and metrics, and of a lane closed while its executor lives (`lane-lost`: the
 * supervisor kills it).
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";
import { getLogger, type Logger } from "../log/logger.ts";
import { DispatchBook, type DispatchedAttempt } from "./dispatch_book.ts";
import {
  type FromBroker,
  type FromLane,
  FromLaneSchema,
  MessageWriter,
  readMessages,
  type ToBroker,
  type ToExecutor,
  type WireTask,
} from "./protocol.ts";

/** How long a connection has to prove its lane. */
const HELLO_TIMEOUT_MS = 10_000;
/** After `lane-closed`, how long the lane's last bytes may take to arrive. */
const CLOSE_GRACE_MS = 2_000;
/**
 * After a lane's connection ended, how long the supervisor's word that its executor exited
 * (and how) may take; without it the executor is taken to live on without its lane.
 */
const EXIT_WORD_GRACE_MS = 3_000;

/** Options of {@linkcode LaneRouter}. */
export interface LaneRouterOptions {
  /** Socket path of each slot, by slot index. */
  paths: readonly string[];
  /** Hands a message to the broker (`Broker.handle`). */
  toBroker: (message: ToBroker) => void;
  /** Sends a message to the supervisor. */
  toSupervisor: (message: FromBroker) => void;
  /** How long a connection has to prove its lane, ms. @default 10000 */
  helloTimeoutMs?: number;
  /**
   * After a lane's connection ended, how long the supervisor's word that its executor exited
   * may take before the executor is taken to live on without its lane, ms. @default 3000
   */
  exitWordGraceMs?: number;
  logger?: Logger;
}

interface Lane {
  readonly id: number;
  readonly slot: number;
  readonly workerId: string;
  readonly secret: Uint8Array;
  conn: Deno.Conn | undefined;
  writer: MessageWriter<ToExecutor> | undefined;
  /** The attempt the executor was given and has not answered. */
  attempt: DispatchedAttempt | undefined;
  /** The executor ends after its outcome (warm pool): it takes no more tasks. */
  recycling: boolean;
  /** Closed: by the supervisor (the executor exited) or because its connection ended. */
  closed: boolean;
  /** Why the supervisor closed it (the reason a running attempt is reported FAILED with). */
  closedReason: string | undefined;
  /** Resolves when the connection's reading ended. */
  readEnded: Promise<void>;
  /** The connection's reading ended. */
  readDone: boolean;
  /** Waits for the supervisor's word after the connection ended. */
  exitWordTimer: ReturnType<typeof setTimeout> | undefined;
}

const encoder = new TextEncoder();

/**
 * Routes tasks between the broker and the executors' lanes.
 *
 * @example
 * ```ts ignore
 * // runBrokerProcess wires it when the broker's init has `lanes`.
 * const router = new LaneRouter({ paths, toBroker: (m) => broker.handle(m), toSupervisor });
 * await router.listen();
 * // the broker's messages: router.fromBroker(message); the supervisor's: router.fromSupervisor
 * ```
 */
export class LaneRouter {
  readonly #o: LaneRouterOptions;
  readonly #log: Logger;
  /** Lanes by id (the current one of each slot, and closed ones still being read). */
  readonly #lanes = new Map<number, Lane>();
  /** The current lane of each slot. */
  readonly #bySlot = new Map<number, Lane>();
  /** The listener of each slot, with the inode of its socket file. */
  readonly #listeners = new Map<number, { listener: Deno.Listener; ino: number | null }>();
  /**
   * Listeners whose socket file was removed or replaced: kept open until the end, as closing
   * one unlinks its path, by then its successor's socket.
   */
  readonly #retired: Deno.Listener[] = [];
  /** The lanes' queue, credits and fence routes. */
  readonly #book = new DispatchBook<Lane>({
    idle: () => this.#idleLanes(),
    mayGrant: () => !this.#draining && !this.#closed,
    assign: (lane, attempt, task) => this.#assign(lane, attempt, task),
  });
  #draining = false;
  #closed = false;

  constructor(options: LaneRouterOptions) {
    this.#o = options;
    this.#log = options.logger ?? getLogger("runtime", "broker");
  }

  /** Tasks waiting for an executor. */
  get queued(): number {
    return this.#book.queued;
  }

  /** A message from the supervisor: lane messages are the router's, the rest the broker's. */
  fromSupervisor(message: ToBroker): void {
    switch (message.type) {
      case "lane-open":
        this.#open(message.slot, message.id, message.workerId, message.secret);
        return;
      case "lane-closed":
        this.#closeBySupervisor(message.id, message.reason);
        return;
      case "abandon-queued":
        for (const task of this.#book.takeQueued()) {
          this.#o.toBroker({
            type: "abandon",
            taskId: task.taskId,
            workerId: "",
            reason: message.reason,
          });
        }
        return;
      case "credit":
        // The lanes' credits are the router's; a relayed credit would break the count.
        this.#log.warn("ignored a credit message: credits come from the executor lanes");
        return;
      case "drain":
        this.#draining = true;
        this.#o.toBroker(message);
        return;
      default:
        this.#o.toBroker(message);
    }
  }

  /** A message from the broker: tasks and fence answers are the router's, the rest go on. */
  fromBroker(message: FromBroker): void {
    switch (message.type) {
      case "tasks":
        this.#book.tasksArrived(message.tasks);
        return;
      case "fence-result": {
        const routed = this.#book.fenceAnswer(message);
        if (routed && !routed.executor.closed) void routed.executor.writer?.send(routed.answer);
        return;
      }
      default:
        this.#o.toSupervisor(message);
    }
  }

  /** Stops listening and closes every lane (the broker is ending). */
  close(): void {
    this.#closed = true;
    for (
      const listener of [...[...this.#listeners.values()].map((l) => l.listener), ...this.#retired]
    ) {
      try {
        listener.close();
      } catch { /* closed */ }
    }
    this.#listeners.clear();
    this.#retired.length = 0;
    for (const lane of this.#lanes.values()) {
      clearTimeout(lane.exitWordTimer);
      this.#hangUp(lane);
    }
  }

  // ---- lanes ----

  #open(slot: number, id: number, workerId: string, secret: string): void {
    const path = this.#o.paths[slot];
    if (path === undefined) {
      this.#log.error("lane-open for slot {slot}, which has no lane path; ignored", { slot });
      return;
    }
    const previous = this.#bySlot.get(slot);
    if (previous && !previous.closed) this.#closeBySupervisor(previous.id, "replaced");
    const lane: Lane = {
      id,
      slot,
      workerId,
      secret: encoder.encode(secret),
      conn: undefined,
      writer: undefined,
      attempt: undefined,
      recycling: false,
      closed: false,
      closedReason: undefined,
      readEnded: Promise.resolve(),
      readDone: false,
      exitWordTimer: undefined,
    };
    this.#lanes.set(id, lane);
    this.#bySlot.set(slot, lane);
    this.#listen(slot, path);
  }

  /**
   * Listens on the socket of `slot`, unless its listener's socket file is still in place (the
   * previous executor, which may write that path, could have removed or replaced it).
   */
  #listen(slot: number, path: string): void {
    const current = this.#listeners.get(slot);
    if (current !== undefined) {
      if (current.ino !== null && socketInode(path) === current.ino) return;
      this.#log.warn("the lane socket of slot {slot} was removed or replaced; listening afresh", {
        slot,
      });
      this.#retired.push(current.listener);
      this.#listeners.delete(slot);
    }
    try {
      Deno.removeSync(path);
    } catch { /* none */ }
    let listener: Deno.Listener;
    try {
      listener = Deno.listen({ transport: "unix", path });
    } catch (error) {
      this.#log.error("cannot listen on the lane of slot {slot} ({path}): {message}", {
        slot,
        path,
        message: (error as Error).message,
      });
      return;
    }
    this.#listeners.set(slot, { listener, ino: socketInode(path) ?? null });
    void (async () => {
      try {
        for await (const conn of listener) void this.#accept(slot, conn);
      } catch { /* listener closed */ }
    })();
  }

  /** A connection to the socket of `slot`: it must prove the slot's current lane first. */
  async #accept(slot: number, conn: Deno.Conn): Promise<void> {
    const messages = readMessages<FromLane>(conn, FromLaneSchema, (error) => {
      this.#log.warn("slot {slot}: ignored an invalid lane line: {message}", {
        slot,
        message: error.message,
      });
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hello = await Promise.race([
      messages.next(),
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), this.#o.helloTimeoutMs ?? HELLO_TIMEOUT_MS);
      }),
    ]).catch(() => undefined);
    clearTimeout(timer);
    const lane = this.#bySlot.get(slot);
    const first = hello === undefined || hello.done ? undefined : hello.value;
    const refused = first?.type !== "hello"
      ? "no hello"
      : lane === undefined || lane.id !== first.id
      ? "not the slot's current lane"
      : !sameSecret(lane.secret, first.secret)
      ? "wrong secret"
      : lane.closed || lane.conn !== undefined
      ? "the lane is taken or closed"
      : undefined;
    if (refused !== undefined || lane === undefined) {
      this.#log.warn("slot {slot}: refused a lane connection ({why})", { slot, why: refused });
      try {
        conn.close();
      } catch { /* closed */ }
      return;
    }
    lane.conn = conn;
    lane.writer = new MessageWriter<ToExecutor>(conn);
    const ended = Promise.withResolvers<void>();
    lane.readEnded = ended.promise;
    this.#book.dispatch();
    this.#grantCredits();
    try {
      for await (const message of messages) this.#fromLane(lane, message);
    } catch {
      // the connection broke: handled below as its end
    } finally {
      ended.resolve();
      this.#laneEnded(lane);
    }
  }

  #fromLane(lane: Lane, message: FromLane): void {
    if (lane.closed) return;
    switch (message.type) {
      case "hello":
        this.#lost(lane, "a second hello on its lane");
        return;
      case "fence": {
        const attempt = lane.attempt;
        if (attempt === undefined || attempt.taskId !== message.taskId) {
          this.#log.warn(
            "executor {workerId} asked the fence of task {taskId}, which it was not given; refused",
            { workerId: lane.workerId, taskId: message.taskId },
          );
          void lane.writer?.send({
            type: "fence-result",
            requestId: message.requestId,
            error: `task ${message.taskId} is not this executor's attempt`,
          });
          return;
        }
        this.#o.toBroker(this.#book.routeFence(lane, message));
        return;
      }
      case "outcome": {
        const attempt = lane.attempt;
        if (attempt === undefined || attempt.attemptId !== message.attemptId) {
          this.#log.error("executor {workerId} reported unknown attempt {attemptId}; ignored", {
            workerId: lane.workerId,
            attemptId: message.attemptId,
          });
          return;
        }
        lane.attempt = undefined;
        if (message.recycle === true) lane.recycling = true;
        this.#o.toSupervisor({
          type: "lane-ended",
          id: lane.id,
          attemptId: attempt.attemptId,
          taskType: attempt.taskType,
          ...(message.recycle === true ? { recycle: true as const } : {}),
        });
        // Queued tasks go to idle lanes; the freed slot's credit goes with the result.
        this.#o.toBroker(this.#book.settle(attempt, lane.workerId, message));
        return;
      }
    }
  }

  /** The supervisor closed the lane (its executor exited): read its last bytes, then end it. */
  #closeBySupervisor(id: number, reason: string): void {
    const lane = this.#lanes.get(id);
    if (lane === undefined || lane.closedReason !== undefined) return;
    lane.closedReason = reason;
    if (lane.conn === undefined || lane.readDone) {
      this.#finish(lane);
      return;
    }
    // The executor is gone: its end of the socket is closed and the rest reads at once.
    const grace = setTimeout(() => this.#hangUp(lane), CLOSE_GRACE_MS);
    void lane.readEnded.then(() => clearTimeout(grace));
  }

  /**
   * The lane's connection ended: its executor exited (the supervisor says so, and how, in a
   * moment: its reason is the attempt's) or closed the lane while alive (lost).
   */
  #laneEnded(lane: Lane): void {
    lane.readDone = true;
    if (lane.closedReason !== undefined || this.#closed) {
      this.#finish(lane);
      return;
    }
    lane.exitWordTimer = setTimeout(
      () => this.#lost(lane, "its executor closed its lane"),
      this.#o.exitWordGraceMs ?? EXIT_WORD_GRACE_MS,
    );
  }

  /** A lane broke while its executor may live: end it now and have the supervisor kill it. */
  #lost(lane: Lane, why: string): void {
    if (lane.closed) return;
    const reason = `executor ${lane.workerId}: ${why}; the executor is stopped and its attempt ` +
      "reported FAILED so Conductor retries it";
    if (!this.#closed) this.#log.error(reason);
    lane.closedReason = reason;
    this.#finish(lane);
    if (!this.#closed) this.#o.toSupervisor({ type: "lane-lost", id: lane.id, reason });
  }

  /** Ends a lane: its unanswered attempt is reported FAILED with the lane's reason. */
  #finish(lane: Lane): void {
    if (lane.closed) return;
    lane.closed = true;
    clearTimeout(lane.exitWordTimer);
    this.#hangUp(lane);
    this.#lanes.delete(lane.id);
    this.#book.dropFenceRoutes(lane);
    const attempt = lane.attempt;
    lane.attempt = undefined;
    if (attempt === undefined) return;
    this.#o.toSupervisor({
      type: "lane-ended",
      id: lane.id,
      attemptId: attempt.attemptId,
      taskType: attempt.taskType,
    });
    this.#o.toBroker({
      type: "abandon",
      taskId: attempt.taskId,
      workerId: lane.workerId,
      reason: lane.closedReason ?? `executor ${lane.workerId} went away during the attempt`,
    });
  }

  #hangUp(lane: Lane): void {
    try {
      lane.conn?.close();
    } catch { /* closed */ }
  }

  // ---- slots and credits (the book's rules; what makes a lane idle is the router's) ----

  #idleLanes(): Lane[] {
    return [...this.#bySlot.values()].filter((lane) =>
      lane.conn !== undefined && !lane.closed && !lane.readDone && lane.attempt === undefined &&
      !lane.recycling
    );
  }

  /** The book's dispatch: `task` goes to the idle executor of `lane`. */
  #assign(lane: Lane, attempt: DispatchedAttempt, task: WireTask): void {
    lane.attempt = attempt;
    // Lease extensions and the result carry this executor's worker id.
    this.#o.toBroker({ type: "assigned", taskId: task.taskId, workerId: lane.workerId });
    void lane.writer?.send({ type: "attempt", attemptId: attempt.attemptId, task });
    this.#o.toSupervisor({ type: "lane-attempt", id: lane.id, ...attempt });
  }

  /** Grants the broker one credit per idle executor not already covered. */
  #grantCredits(): void {
    const free = this.#book.claimFreeCredits();
    if (free > 0) this.#o.toBroker({ type: "credit", n: free });
  }
}

/** The inode of the socket file at `path`; `undefined` when there is none. */
function socketInode(path: string): number | undefined {
  try {
    const stat = Deno.lstatSync(path);
    return stat.isSocket ? stat.ino ?? undefined : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `given` is the lane's secret, compared in constant time. */
function sameSecret(secret: Uint8Array, given: string): boolean {
  const bytes = encoder.encode(given);
  return bytes.length === secret.length && timingSafeEqual(bytes, secret);
}
