/**
 * The demo Conductor server: the REST subset perago and the Conductor SDK workers use, on
 * loopback, with fault injection and optional persistence. Third-party SDK workers (Orkes
 * JavaScript, conductor-python) can poll it and post results to it.
 *
 * Requires `--allow-net` (listen) and, with `dataDir`, `--allow-read`/`--allow-write` there.
 *
 * @module
 */
import { FaultInjector } from "../faults.ts";
import { ConductorEngine, ConductorHttpError, type Json } from "./engine.ts";
import { loadState, StateSaver } from "./_store.ts";

/** Options of {@linkcode startConductorServer}. */
export interface ConductorServerOptions {
  /** Interface to listen on. @default "127.0.0.1" */
  hostname?: string;
  /** Port; 0 picks a free one. @default 0 */
  port?: number;
  /** Directory to persist state in (JSON, atomic writes). @default in memory only */
  dataDir?: string;
  /** Fault injector to apply to every request. @default a new one with faults off */
  faults?: FaultInjector;
  /** Period of the response-timeout sweeper in ms. @default 1000 */
  sweepIntervalMs?: number;
  /** Clock (epoch ms) for timestamps, delays and timeouts. @default Date.now */
  clock?: () => number;
  /**
   * Like Conductor's queues, a batch poll waits until it has `count` tasks or its timeout
   * passes (Conductor OSS 3.21 does: a poll for 5 with 1 queued answers after its timeout).
   * `false` answers as soon as at least one task is there.
   * @default true
   */
  fillBatchPolls?: boolean;
}

/** A running demo Conductor server. */
export interface ConductorServerHandle extends AsyncDisposable {
  /** `http://127.0.0.1:PORT`; the API is under `/api`. */
  readonly url: string;
  readonly port: number;
  readonly faults: FaultInjector;
  /** Request counts per operation (e.g. `pollBatch`, `updateTask`). */
  readonly stats: { count(op: string): number; reset(): void };
  /** The engine, for tests that need to look inside or force a sweep. */
  readonly engine: ConductorEngine;
  /** Stops listening, ends long polls, stops the sweeper and flushes the state (also what
   * `await using` calls on the way out). */
  close(): Promise<void>;
}

const MAX_POLL_TIMEOUT_MS = 5000;

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

function text(body: string, status = 200): Response {
  return new Response(body, { status, headers: { "content-type": "text/plain;charset=UTF-8" } });
}

function noContent(): Response {
  return new Response(null, { status: 204 });
}

async function readJson(request: Request): Promise<unknown> {
  const body = await request.text();
  try {
    return JSON.parse(body);
  } catch (error) {
    throw new ConductorHttpError(500, `JSON parse error: ${(error as Error).message}`);
  }
}

function intParam(url: URL, name: string, fallback: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value)) {
    throw new ConductorHttpError(400, `Invalid value for ${name}: ${raw}`);
  }
  return value;
}

/** A poll that waits for tasks: what `engine.poll` gives now, and more as they come. */
type LongPoll = (
  taskType: string,
  count: number,
  timeoutMs: number,
  workerId: string | null,
  domain: string | null,
) => Promise<Json[]>;

/**
 * The long poll of the demo Conductor over `engine`; every poll ends at once when `closing`
 * aborts. With `fillBatchPolls` a batch poll waits for its count (see
 * {@linkcode ConductorServerOptions.fillBatchPolls}).
 */
function longPoller(
  engine: ConductorEngine,
  closing: AbortSignal,
  fillBatchPolls: boolean,
): LongPoll {
  // Long-poll wake-ups: any enqueue wakes every waiter, which re-checks its own queue.
  let waiters: (() => void)[] = [];
  engine.onEnqueue = () => {
    const wake = waiters;
    waiters = [];
    for (const w of wake) w();
  };
  const waitForWork = (ms: number, signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        waiters = waiters.filter((w) => w !== done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(1, ms));
      signal.addEventListener("abort", done, { once: true });
      waiters.push(done);
    });

  // Like Conductor's queue DAOs, a batch poll waits until it has `count` tasks or its
  // timeout passes; tasks popped early are IN_PROGRESS while it waits for more. The long poll
  // does not watch `request.signal` (reading it makes Deno print a legacy warning): like the
  // real server, a poller that hangs up mid-poll is noticed only when its answer is written.
  // Polls last at most 5 s, and closing the server ends them at once.
  async function longPoll(
    taskType: string,
    count: number,
    timeoutMs: number,
    workerId: string | null,
    domain: string | null,
  ): Promise<Json[]> {
    const deadline = Date.now() + timeoutMs;
    const tasks: Json[] = [];
    while (true) {
      if (closing.aborted) return tasks;
      tasks.push(...engine.poll(taskType, count - tasks.length, workerId, domain));
      const left = deadline - Date.now();
      if (tasks.length >= count || left <= 0 || (!fillBatchPolls && tasks.length > 0)) {
        return tasks;
      }
      const next = engine.nextDelivery(taskType, domain);
      const untilNext = next === undefined ? left : Math.max(5, next - engine.now());
      await waitForWork(Math.min(left, untilNext), closing);
    }
  }
  return longPoll;
}

/**
 * The routes of the demo Conductor: the REST subset perago and the SDK workers use (auth,
 * tasks, metadata, workflows), each request counted under its operation. Throws
 * {@linkcode ConductorHttpError} for the error answers.
 */
function conductorRoutes(
  engine: ConductorEngine,
  count: (op: string) => void,
  longPoll: LongPoll,
): (request: Request) => Promise<Response> {
  return route;

  async function route(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const method = request.method;
    const seg = path.split("/").slice(1).map(decodeURIComponent);

    if (path === "/health" && method === "GET") {
      count("health");
      return json({ healthResults: [], suppressedHealthResults: [], healthy: true });
    }
    if (seg[0] !== "api") {
      throw new ConductorHttpError(404, `No static resource ${path.slice(1)}.`);
    }
    const [, area, a, b, c, d] = seg;
    const n = seg.length;

    // ---- auth (accepted, not enforced: the demo has no users)
    if (area === "token" && n === 2 && method === "POST") {
      count("token");
      await request.text();
      return json({ token: `demo-${crypto.randomUUID()}` });
    }

    // ---- tasks
    if (area === "tasks") {
      if (a === "poll" && b === "batch" && c !== undefined && n === 5 && method === "GET") {
        count("pollBatch");
        const timeout = intParam(url, "timeout", 100);
        if (timeout > MAX_POLL_TIMEOUT_MS) {
          throw new ConductorHttpError(
            400,
            "Long Poll Timeout value cannot be more than 5 seconds",
          );
        }
        const batch = intParam(url, "count", 1);
        const tasks = await longPoll(
          c,
          batch,
          Math.max(0, timeout),
          url.searchParams.get("workerid"),
          url.searchParams.get("domain") || null,
        );
        return json(tasks);
      }
      if (a === "poll" && b !== undefined && n === 4 && method === "GET") {
        count("poll");
        const tasks = await longPoll(
          b,
          1,
          0,
          url.searchParams.get("workerid"),
          url.searchParams.get("domain") || null,
        );
        return tasks[0] ? json(tasks[0]) : noContent();
      }
      if (n === 2 && method === "POST") {
        count("updateTask");
        const task = engine.updateTask(await readJson(request));
        return text(task.taskId as string);
      }
      if (a === "update-v2" && n === 3 && method === "POST") {
        count("updateTaskV2");
        const body = await readJson(request);
        const task = engine.updateTask(body);
        const workerId = (body as Json).workerId;
        const next = engine.poll(
          task.taskType as string,
          1,
          typeof workerId === "string" ? workerId : null,
          (task.domain as string | null) ?? null,
        );
        return next[0] ? json(next[0]) : noContent();
      }
      if (a === "queue" && b === "sizes" && n === 4 && method === "GET") {
        count("queueSizes");
        return json(engine.queueSizes(url.searchParams.getAll("taskType")));
      }
      if (a !== undefined && b === "log" && n === 4) {
        if (method === "POST") {
          count("addTaskLog");
          engine.addLog(a, await request.text());
          return new Response(null, { status: 200 });
        }
        if (method === "GET") {
          count("getTaskLogs");
          return json(engine.getLogs(a));
        }
      }
      if (a !== undefined && b !== undefined && c !== undefined && n === 5 && method === "POST") {
        count("updateTaskByRef");
        const status = c;
        if (
          !["IN_PROGRESS", "COMPLETED", "FAILED", "FAILED_WITH_TERMINAL_ERROR"].includes(status)
        ) {
          throw new ConductorHttpError(400, `Invalid task status: ${status}`);
        }
        const raw = await request.text();
        let output: unknown = {};
        if (raw.trim() !== "") {
          try {
            output = JSON.parse(raw);
          } catch (error) {
            throw new ConductorHttpError(500, `JSON parse error: ${(error as Error).message}`);
          }
        }
        return text(engine.updateTaskByRef(a, b, status, output, url.searchParams.get("workerid")));
      }
      if (a !== undefined && n === 3 && method === "GET") {
        count("getTask");
        const task = engine.getTask(a);
        return task === undefined ? new Response(null, { status: 204 }) : json(task);
      }
    }

    // ---- metadata
    if (area === "metadata") {
      if (a === "taskdefs") {
        if (n === 3 && method === "GET") {
          count("listTaskDefs");
          return json(Object.values(engine.state.taskDefs));
        }
        if (n === 3 && method === "POST") {
          count("registerTaskDefs");
          engine.registerTaskDefs(await readJson(request));
          return new Response(null, { status: 200 });
        }
        if (n === 3 && method === "PUT") {
          count("updateTaskDef");
          engine.updateTaskDef(await readJson(request));
          return new Response(null, { status: 200 });
        }
        if (b !== undefined && n === 4 && method === "GET") {
          count("getTaskDef");
          return json(engine.getTaskDef(b));
        }
        if (b !== undefined && n === 4 && method === "DELETE") {
          count("deleteTaskDef");
          engine.deleteTaskDef(b);
          return new Response(null, { status: 200 });
        }
      }
      if (a === "workflow") {
        if (n === 3 && method === "POST") {
          count("registerWorkflowDef");
          const body = await readJson(request);
          // `overwrite=true` (sent by the Orkes SDKs' registerWorkflowDef) upserts, as Orkes
          // does; Conductor OSS 3.21 ignores it and refuses an existing name+version.
          if (url.searchParams.get("overwrite") === "true") engine.upsertWorkflowDefs([body]);
          else engine.createWorkflowDef(body);
          return new Response(null, { status: 200 });
        }
        if (n === 3 && method === "PUT") {
          count("upsertWorkflowDefs");
          return json(engine.upsertWorkflowDefs(await readJson(request)));
        }
        if (n === 3 && method === "GET") {
          count("listWorkflowDefs");
          return json(engine.listWorkflowDefs());
        }
        if (b !== undefined && c !== undefined && n === 5 && method === "DELETE") {
          count("deleteWorkflowDef");
          const version = Number(c);
          if (!Number.isInteger(version)) {
            throw new ConductorHttpError(400, `Invalid workflow version: ${c}`);
          }
          engine.deleteWorkflowDef(b, version);
          return new Response(null, { status: 200 });
        }
        if (b !== undefined && n === 4 && method === "GET") {
          count("getWorkflowDef");
          const version = url.searchParams.get("version");
          return json(
            engine.getWorkflowDef(b, version ? intParam(url, "version", 1) : undefined),
          );
        }
      }
    }

    // ---- workflows
    if (area === "workflow") {
      if (n === 2 && method === "POST") {
        count("startWorkflow");
        const body = await readJson(request);
        if (typeof body !== "object" || body === null || Array.isArray(body)) {
          throw new ConductorHttpError(500, "JSON parse error: StartWorkflowRequest expected");
        }
        const req = body as Json;
        if (typeof req.name !== "string" || req.name === "") {
          throw new ConductorHttpError(400, "Validation failed, check below errors for detail.", {
            validationErrors: [{ path: "name", message: "Workflow name cannot be null or empty" }],
          });
        }
        const id = engine.startWorkflow({
          name: req.name,
          version: typeof req.version === "number" ? req.version : undefined,
          input: req.input ?? {},
          correlationId: typeof req.correlationId === "string" ? req.correlationId : undefined,
          taskToDomain: req.taskToDomain,
          priority: typeof req.priority === "number" ? req.priority : undefined,
        });
        return text(id);
      }
      if (a !== undefined && n === 3 && method === "POST") {
        count("startWorkflow");
        const raw = await request.text();
        if (raw.trim() === "") {
          throw new ConductorHttpError(500, "Required request body is missing: send {} at least");
        }
        let input: unknown;
        try {
          input = JSON.parse(raw);
        } catch (error) {
          throw new ConductorHttpError(500, `JSON parse error: ${(error as Error).message}`);
        }
        const version = url.searchParams.get("version");
        const id = engine.startWorkflow({
          name: a,
          version: version ? intParam(url, "version", 1) : undefined,
          input,
          correlationId: url.searchParams.get("correlationId") ?? undefined,
          priority: intParam(url, "priority", 0),
        });
        return text(id);
      }
      if (a !== undefined && n === 3 && method === "GET") {
        count("getWorkflow");
        return json(engine.getWorkflow(a, url.searchParams.get("includeTasks") !== "false"));
      }
      if (a === "running" && b !== undefined && n === 4 && method === "GET") {
        count("runningWorkflows");
        return json(engine.runningWorkflowIds(b));
      }
      if (a !== undefined && b === "status" && n === 4 && method === "GET") {
        count("getWorkflowStatus");
        const wf = engine.getWorkflow(a, false);
        return json({
          workflowId: wf.workflowId,
          correlationId: wf.correlationId,
          output: wf.output,
          variables: wf.variables,
          status: wf.status,
        });
      }
      if (a !== undefined && n === 3 && method === "DELETE") {
        count("terminateWorkflow");
        engine.terminateWorkflow(a, url.searchParams.get("reason") ?? undefined);
        return new Response(null, { status: 200 });
      }
      if (a !== undefined && b === "pause" && n === 4 && method === "PUT") {
        count("pauseWorkflow");
        engine.pauseWorkflow(a);
        return new Response(null, { status: 200 });
      }
      if (a !== undefined && b === "resume" && n === 4 && method === "PUT") {
        count("resumeWorkflow");
        engine.resumeWorkflow(a);
        return new Response(null, { status: 200 });
      }
      if (a !== undefined && b === "retry" && n === 4 && method === "POST") {
        count("retryWorkflow");
        engine.retryWorkflow(a);
        return new Response(null, { status: 204 });
      }
      if (a !== undefined && b === "restart" && n === 4 && method === "POST") {
        count("restartWorkflow");
        engine.restartWorkflow(a);
        return new Response(null, { status: 204 });
      }
      if (a !== undefined && b === "remove" && n === 4 && method === "DELETE") {
        count("removeWorkflow");
        engine.removeWorkflow(a, url.searchParams.get("archiveWorkflow") !== "false");
        return new Response(null, { status: 200 });
      }
    }
    void d;
    throw new ConductorHttpError(404, `No handler for ${method} ${path}`);
  }
}

/**
 * Starts the demo Conductor.
 *
 * @example
 * ```ts
 * const server = await startConductorServer({ port: 0 });
 * console.log(server.url); // http://127.0.0.1:PORT
 * await server.close();
 * ```
 */
export async function startConductorServer(
  options: ConductorServerOptions = {},
): Promise<ConductorServerHandle> {
  const clock = options.clock ?? Date.now;
  const state = options.dataDir ? await loadState(options.dataDir) : undefined;
  const engine = new ConductorEngine(state, clock);
  const saver = options.dataDir ? new StateSaver(options.dataDir, () => engine.state) : undefined;
  if (saver) engine.onChange = () => saver.schedule();
  const faults = options.faults ?? new FaultInjector();
  const counts = new Map<string, number>();
  const count = (op: string) => void counts.set(op, (counts.get(op) ?? 0) + 1);
  const closing = new AbortController();
  const longPoll = longPoller(engine, closing.signal, options.fillBatchPolls ?? true);
  const route = conductorRoutes(engine, count, longPoll);

  const handler = faults.wrap(async (request) => {
    try {
      return await route(request);
    } catch (error) {
      if (error instanceof ConductorHttpError) return json(error.body(), error.status);
      return json({
        status: 500,
        message: `demo Conductor internal error: ${(error as Error)?.message ?? error}`,
        retryable: true,
      }, 500);
    }
  });

  const server = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    onListen: () => {},
    onError: (error) =>
      json({ status: 500, message: `demo Conductor: ${(error as Error)?.message}` }, 500),
  }, handler);
  const addr = server.addr as Deno.NetAddr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;

  const sweepIntervalMs = options.sweepIntervalMs ?? 1000;
  const sweeper = setInterval(() => {
    try {
      engine.sweep();
    } catch {
      // A sweep must never take the server down; the next one tries again.
    }
  }, sweepIntervalMs);

  let closed: Promise<void> | undefined;
  return {
    url: `http://${host}:${addr.port}`,
    port: addr.port,
    faults,
    engine,
    stats: {
      count: (op) => counts.get(op) ?? 0,
      reset: () => counts.clear(),
    },
    close() {
      closed ??= (async () => {
        clearInterval(sweeper);
        closing.abort();
        faults.reset(); // release paused requests so shutdown does not hang
        await server.shutdown();
        await saver?.flush();
      })();
      return closed;
    },
    [Symbol.asyncDispose](this: { close(): Promise<void> }) {
      return this.close();
    },
  };
}
