/** A tiny in-memory ConductorApi for broker tests (a seam implementation, not a mock). */
import type { ConductorApi, PollOptions, Task, TaskResult } from "../../src/conductor/api.ts";
import { ConductorError, ConductorNotFoundError } from "../../src/conductor/errors.ts";

export class MemoryConductor implements ConductorApi {
  readonly queues = new Map<string, Task[]>();
  readonly tasks = new Map<string, Task>();
  readonly updates: TaskResult[] = [];
  readonly polls: {
    taskType: string;
    count: number;
    workerId: string;
    domain: string | undefined;
    timeoutMs: number;
    at: number;
  }[] = [];
  failNextPolls = 0;
  failUpdates = 0;
  #seq = 0;
  #waiters: (() => void)[] = [];

  /** Queues a task; one with a `domain` is handed only to polls of that domain. */
  enqueue(taskType: string, overrides: Partial<Task> = {}): Task {
    const id = `task-${++this.#seq}`;
    const task: Task = {
      taskType,
      taskDefName: taskType,
      status: "SCHEDULED",
      inputData: { params: {} },
      referenceTaskName: "ref",
      retryCount: 0,
      seq: this.#seq,
      responseTimeoutSeconds: 600,
      workflowInstanceId: `wf-${this.#seq}`,
      taskId: id,
      ...overrides,
    };
    this.tasks.set(task.taskId, task);
    const key = queueKey(taskType, task.domain);
    const queue = this.queues.get(key) ?? [];
    queue.push(task);
    this.queues.set(key, queue);
    for (const wake of this.#waiters.splice(0)) wake();
    return task;
  }

  async pollBatch(taskType: string, options: PollOptions): Promise<Task[]> {
    this.polls.push({
      taskType,
      count: options.count,
      workerId: options.workerId,
      domain: options.domain,
      timeoutMs: options.timeoutMs,
      at: Date.now(),
    });
    if (this.failNextPolls > 0) {
      this.failNextPolls--;
      throw new Error("injected poll failure");
    }
    const deadline = Date.now() + options.timeoutMs;
    while (true) {
      options.signal?.throwIfAborted();
      const queue = this.queues.get(queueKey(taskType, options.domain)) ?? [];
      if (queue.length > 0) {
        const out = queue.splice(0, options.count);
        for (const task of out) {
          task.status = "IN_PROGRESS";
          task.workerId = options.workerId;
        }
        return out.map((task) => structuredClone(task));
      }
      const left = deadline - Date.now();
      if (left <= 0) return [];
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        const onAbort = () => done();
        options.signal?.addEventListener("abort", onAbort, { once: true });
        this.#waiters.push(done);
        function done() {
          clearTimeout(timer);
          options.signal?.removeEventListener("abort", onAbort);
          resolve();
        }
      });
    }
  }

  updateTask(result: TaskResult): Promise<string> {
    if (this.failUpdates > 0 && result.status !== "IN_PROGRESS") {
      this.failUpdates--;
      return Promise.reject(
        new ConductorError({ operation: "updateTask", status: 503, transient: true }),
      );
    }
    const task = this.tasks.get(result.taskId);
    if (!task) {
      return Promise.reject(
        new ConductorNotFoundError({ operation: "updateTask", status: 404, serverMessage: "gone" }),
      );
    }
    this.updates.push(structuredClone(result));
    if (result.status !== "IN_PROGRESS") task.status = result.status;
    return Promise.resolve(result.taskId);
  }

  getTask(taskId: string): Promise<Task> {
    const task = this.tasks.get(taskId);
    if (!task) {
      return Promise.reject(
        new ConductorNotFoundError({ operation: "getTask", status: 404, serverMessage: "gone" }),
      );
    }
    return Promise.resolve(structuredClone(task));
  }

  addTaskLog(): Promise<void> {
    return Promise.resolve();
  }
  getTaskDef(): Promise<undefined> {
    return Promise.resolve(undefined);
  }
  registerTaskDefs(): Promise<void> {
    return Promise.resolve();
  }
  updateTaskDef(): Promise<void> {
    return Promise.resolve();
  }
  upsertWorkflowDefs(): Promise<void> {
    return Promise.resolve();
  }
  startWorkflow(): Promise<string> {
    return Promise.resolve("wf");
  }
  getWorkflow(): Promise<never> {
    return Promise.reject(new Error("not implemented"));
  }
  health(): Promise<boolean> {
    return Promise.resolve(true);
  }
}

function queueKey(taskType: string, domain: string | undefined): string {
  return domain ? `${domain}:${taskType}` : taskType;
}
