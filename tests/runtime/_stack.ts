/**
 * Runtime test stack: a {@linkcode TestStack} (the demo Conductor and lakeFS in-process, or the
 * real ones with the `servers` option) with the probe task module written and registered, and
 * `deno run -A main.ts start` as a real child process.
 */
import { ConductorClient } from "../../src/conductor/client.ts";
import { DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY } from "../../src/devstack/credentials.ts";
import type { ConductorServerHandle } from "../../src/devstack/conductor/server.ts";
import type { Workflow } from "../../src/conductor/api.ts";
import { stopWorker as stopPerago, type Worker } from "../_perago_process.ts";
import type { RealConductor, RealLakeFs } from "../_real_servers.ts";
import { oneTaskWorkflow, registerTaskModules, TestStack, waitWorkflowStatus } from "../_stack.ts";

const MOD = new URL("../../mod.ts", import.meta.url).href;

/** A workspace-free task that can sleep, read a path or fetch a URL on request. */
export const PROBE_TASK = (name: string, responseSeconds: number) => `
import { defineTask, z } from "${MOD}";
export default defineTask({
  name: "${name}",
  ownerEmail: "tests@example.com",
  description: "runtime test task",
  params: z.object({
    a: z.number(), b: z.number(),
    sleepMs: z.number().optional(), read: z.string().optional(), fetch: z.string().optional(),
    printStdout: z.boolean().optional(), sleepOnlyFirst: z.boolean().optional(),
    hogOnlyFirst: z.boolean().optional(), gcHidden: z.boolean().optional(),
  }),
  result: z.object({ sum: z.number() }),
  controls: {
    retry: { count: 2, logic: "FIXED", delaySeconds: 0 },
    timeout: { responseSeconds: ${responseSeconds}, seconds: 0 },
  },
  async run(p, ctx) {
    if (p.printStdout) console.log("a task printing to stdout");
    // The executor process's exposed gc function (idle_gc.ts) is taken before tasks load.
    if (p.gcHidden && !("__peragoExecutorGc" in globalThis && globalThis.__peragoExecutorGc === undefined)) {
      throw new Error("the executor's gc global is missing or reachable by the task");
    }
    if (p.hogOnlyFirst && ctx.attempt.retryCount === 0) {
      // A runaway task: keeps every allocation until the heap gives out.
      const kept = [];
      while (true) kept.push(new Array(100_000).fill({ n: kept.length }));
    }
    const sleeps = p.sleepMs && !(p.sleepOnlyFirst && ctx.attempt.retryCount > 0);
    if (sleeps) await new Promise((r, j) => {
      const t = setTimeout(r, p.sleepMs);
      ctx.signal.addEventListener("abort", () => { clearTimeout(t); j(ctx.signal.reason); });
    });
    if (p.read) await Deno.readTextFile(p.read);
    if (p.fetch) await (await fetch(p.fetch)).text();
    return { sum: p.a + p.b };
  },
});
`;

/** A running stack; `await using stack = await startStack()` closes it when the scope ends. */
export interface Stack extends AsyncDisposable {
  dir: string;
  workspaceRoot: string;
  logRoot: string;
  modulePath: string;
  taskName: string;
  conductorUrl: string;
  lakefsUrl: string;
  /** lakeFS's URL and keys (the demo's or the real server's). */
  lakefs: RealLakeFs;
  /** Whether the stack runs on real servers (names must then be unique per run). */
  real: boolean;
  api: ConductorClient;
  /** The demo Conductor (its fault switches); throws on real servers, which have none. */
  readonly conductor: ConductorServerHandle;
  env: Record<string, string>;
  /** The stack underneath (its workers are killed when it closes). */
  testStack: TestStack;
  startWorkflow(params: Record<string, unknown>): Promise<string>;
  waitWorkflow(id: string, status: string, timeoutMs?: number): Promise<Workflow>;
  close(): Promise<void>;
}

/**
 * Starts the demo servers (or takes `servers`, real ones from `tests/_real_servers.ts`),
 * writes and registers the probe task and its workflow.
 */
export async function startStack(
  options: {
    responseSeconds?: number;
    sweepIntervalMs?: number;
    servers?: { conductor: RealConductor; lakefs: RealLakeFs };
  } = {},
): Promise<Stack> {
  const base = await TestStack.start({
    dirPrefix: "perago-rt-",
    servers: options.servers ?? "demo",
    conductor: { sweepIntervalMs: options.sweepIntervalMs ?? 200 },
    lakefs: { accessKeyId: DEMO_ACCESS_KEY_ID, secretAccessKey: DEMO_SECRET_ACCESS_KEY },
  });
  try {
    const taskName = base.uniqueName("probe");
    const modulePath = await base.writeModule(
      "tasks/probe.ts",
      PROBE_TASK(taskName, options.responseSeconds ?? 60),
    );
    const api = new ConductorClient({ serverUrl: base.conductorUrl });
    await registerTaskModules(api, [modulePath]);
    await api.upsertWorkflowDefs([oneTaskWorkflow(
      `${taskName}_wf`,
      { taskName, ref: "probe", inputs: { params: "${workflow.input.params}" } },
      { sum: "${probe.output.result.sum}" },
      "tests@example.com",
    )]);
    const env = base.peragoEnv({ workerIdPrefix: "probe" });
    const stack: Stack = {
      dir: base.dir,
      workspaceRoot: env.PERAGO_WORKSPACE_ROOT!,
      logRoot: env.PERAGO_LOG_ROOT!,
      modulePath,
      taskName,
      conductorUrl: base.conductorUrl,
      lakefsUrl: base.lakefs.url,
      lakefs: base.lakefs,
      real: base.real,
      api,
      conductor: base.conductorServer!,
      env,
      testStack: base,
      startWorkflow: (params) => api.startWorkflow(`${taskName}_wf`, { params }),
      waitWorkflow: (id, status, timeoutMs) => waitWorkflowStatus(api, id, status, timeoutMs),
      close: () => base.close(),
      [Symbol.asyncDispose]: () => base.close(),
    };
    if (!base.conductorServer) {
      // Not enumerable, so `{ ...stack }` copies stay usable on real servers.
      Object.defineProperty(stack, "conductor", {
        enumerable: false,
        get() {
          throw new Error("stack: no demo Conductor (fault switches) on the real servers");
        },
      });
    }
    return stack;
  } catch (error) {
    await base.close();
    throw error;
  }
}

/** `perago start` as a child process, with its stderr collected. */
export type { Worker };

/**
 * `perago start <stack.modulePath> <args...>` with the stack's environment, SIGKILLed when the
 * stack closes if still running; `denoFlags` replace `-A` (thread mode adds
 * `--unstable-worker-options`).
 */
export function startWorker(
  stack: Stack,
  args: string[] = [],
  denoFlags: string[] = ["-A"],
): Worker {
  return stack.testStack.spawnWorker([stack.modulePath, ...args], {
    cwd: stack.dir,
    env: stack.env,
    denoFlags,
  });
}

/** Stops a worker (SIGTERM) and returns its exit code; SIGKILL after 20 s. */
export function stopWorker(worker: Worker, timeoutMs = 20_000): Promise<number> {
  return stopPerago(worker, timeoutMs);
}
