/**
 * The book the broker's task router keeps, in one place for both routers: the supervisor
 * (relayed executors: thread mode, compiled binaries) and the broker's lane router (executor
 * lanes, process mode). It holds the tasks the broker polled that no executor has yet, the
 * credits granted to the broker that no task has used yet, the attempt and fence request
 * counters, and the route of each fence look-up back to the executor that asked it.
 *
 * The credit rule: the broker may hold one task per idle executor, so it is granted one
 * credit per idle executor not already covered by a credit outstanding or a queued task; it
 * never holds more tasks than there are free slots. Each arriving task spends a credit.
 *
 * What an executor is (a supervisor's slot, a lane), when one is idle, when credits may be
 * granted, and how a task reaches it stay with each router: it passes them in.
 *
 * @module
 */
import type { FenceResultMessage, FromExecutor, ToBroker, WireTask } from "./protocol.ts";

/** The attempt of a task an executor was given. */
export interface DispatchedAttempt {
  /** Unique within the book (`a1`, `a2`, ...). */
  attemptId: string;
  taskId: string;
  /** The task's definition name (`taskDefName`, else `taskType`): the key of its metrics. */
  taskType: string;
}

/** An executor's fence look-up (as it sends it). */
export type FenceRequest = Extract<FromExecutor, { type: "fence" }>;
/** An executor's outcome of its attempt (as it sends it). */
export type OutcomeMessage = Extract<FromExecutor, { type: "outcome" }>;
/** The result the broker delivers to Conductor. */
export type ResultMessage = Extract<ToBroker, { type: "result" }>;

/** Options of {@linkcode DispatchBook}: what the router knows of its executors. */
export interface DispatchBookOptions<E> {
  /** The executors that can take a task now, in the order they take them. */
  idle: () => readonly E[];
  /**
   * Whether credits may be granted now (not while starting, draining or stopped, nor when
   * another router grants them).
   */
  mayGrant: () => boolean;
  /**
   * Hands `task` to `executor` as `attempt` (it was idle): marks the executor busy and sends
   * the attempt. Called by {@linkcode DispatchBook.dispatch}, once per task.
   */
  assign: (executor: E, attempt: DispatchedAttempt, task: WireTask) => void;
}

/**
 * The queue, credit count and fence routes of a task router, over executors of type `E`.
 *
 * @example
 * ```ts
 * import type { WireTask } from "./protocol.ts";
 *
 * const slots = [{ name: "w0", attempt: undefined as string | undefined }];
 * const book = new DispatchBook({
 *   idle: () => slots.filter((slot) => slot.attempt === undefined),
 *   mayGrant: () => true,
 *   assign: (slot, attempt) => {
 *     slot.attempt = attempt.attemptId;
 *   },
 * });
 * book.claimFreeCredits(); // 1: send the broker `{ type: "credit", n: 1 }`
 * book.tasksArrived([
 *   { taskId: "t1", taskType: "sum", workflowInstanceId: "w1" } as WireTask,
 * ]);
 * slots[0]!.attempt; // "a1"
 * ```
 */
export class DispatchBook<E> {
  readonly #o: DispatchBookOptions<E>;
  /** Tasks the broker polled that no executor has yet. */
  readonly #queue: WireTask[] = [];
  /** Credits granted to the broker that no arrived task has used yet. */
  #outstandingCredits = 0;
  #attemptSeq = 0;
  #requestSeq = 0;
  /** The broker's fence request id -> the executor that asked, and its own request id. */
  readonly #fenceRoutes = new Map<number, { executor: E; requestId: number }>();

  constructor(options: DispatchBookOptions<E>) {
    this.#o = options;
  }

  /** Tasks waiting for an executor. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Credits granted that no arrived task has used yet. */
  get outstandingCredits(): number {
    return this.#outstandingCredits;
  }

  /**
   * Tasks the broker polled: each spends a credit granted for it, then they go to idle
   * executors. Only a server that hands over more tasks than a poll asked for sends more
   * (the broker holds and logs those): they wait in the queue, which the next grants count,
   * and spend nothing.
   */
  tasksArrived(tasks: readonly WireTask[]): void {
    const covered = Math.min(tasks.length, this.#outstandingCredits);
    this.#outstandingCredits -= covered;
    this.#queue.push(...tasks);
    this.dispatch();
  }

  /** Hands queued tasks to the idle executors, oldest task first, one each. */
  dispatch(): void {
    for (const executor of this.#o.idle()) {
      const task = this.#queue.shift();
      if (!task) break;
      const attemptId = `a${++this.#attemptSeq}`;
      const taskType = task.taskDefName ?? task.taskType;
      this.#o.assign(executor, { attemptId, taskId: task.taskId, taskType }, task);
    }
  }

  /**
   * Counts as granted, and returns, one credit per idle executor not already covered (by a
   * credit outstanding or a queued task); 0 when none is free or credits may not be granted.
   */
  claimFreeCredits(): number {
    if (!this.#o.mayGrant()) return 0;
    const free = this.#o.idle().length - this.#outstandingCredits - this.#queue.length;
    if (free <= 0) return 0;
    this.#outstandingCredits += free;
    return free;
  }

  /**
   * An executor answered `attempt` (and was marked free): queued tasks go to idle executors,
   * and the result for the broker carries the credits the freed slot makes free, so the
   * broker may take the next task in the call that delivers this one.
   */
  settle(attempt: DispatchedAttempt, workerId: string, message: OutcomeMessage): ResultMessage {
    this.dispatch();
    const credit = this.claimFreeCredits();
    return {
      type: "result",
      taskId: attempt.taskId,
      workerId,
      outcome: message.outcome,
      ...(message.traceparent === undefined ? {} : { traceparent: message.traceparent }),
      ...(credit > 0 ? { credit } : {}),
    };
  }

  /** Tasks no executor took, removed from the queue (to be abandoned). */
  takeQueued(): WireTask[] {
    return this.#queue.splice(0);
  }

  /**
   * Routes `executor`'s fence look-up: returns it for the broker under a request id of the
   * book's own (executors number theirs independently), remembered until its answer.
   */
  routeFence(executor: E, request: FenceRequest): Extract<ToBroker, { type: "fence" }> {
    const requestId = ++this.#requestSeq;
    this.#fenceRoutes.set(requestId, { executor, requestId: request.requestId });
    return {
      type: "fence",
      requestId,
      taskId: request.taskId,
      ...(request.traceparent === undefined ? {} : { traceparent: request.traceparent }),
    };
  }

  /**
   * The broker answered a fence look-up: the executor that asked and the answer under its
   * own request id; `undefined` for an unknown (or already answered or dropped) request.
   */
  fenceAnswer(
    answer: FenceResultMessage,
  ): { executor: E; answer: FenceResultMessage } | undefined {
    const route = this.#fenceRoutes.get(answer.requestId);
    if (route === undefined) return undefined;
    this.#fenceRoutes.delete(answer.requestId);
    return { executor: route.executor, answer: { ...answer, requestId: route.requestId } };
  }

  /** Forgets the fence look-ups of `executor` (it went away): their answers are dropped. */
  dropFenceRoutes(executor: E): void {
    for (const [requestId, route] of this.#fenceRoutes) {
      if (route.executor === executor) this.#fenceRoutes.delete(requestId);
    }
  }
}
