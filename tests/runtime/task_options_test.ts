/**
 * The worker options Conductor users expect, end to end with real `perago start` processes,
 * against the demo Conductor and the real Conductor OSS (`PERAGO_TEST_CONDUCTOR_URL`):
 *
 * - a workflow started with `taskToDomain` is served only by the supervisor of that domain;
 * - a task type with `worker.concurrency: 1` under `-j 3` never has two attempts in flight,
 *   read from the server's own start and end times (and `PERAGO_TASK_CONCURRENCY_<NAME>` caps
 *   another type);
 * - a paused task type stays SCHEDULED while the others complete, and `/metrics` says so.
 *
 * The tasks are workspace-free (lakeFS is the in-process demo one: `perago start` needs one
 * configured). Names are unique per run: the real server keeps state between runs.
 */
import assert from "node:assert/strict";
import { ConductorClient } from "../../src/conductor/client.ts";
import { LakeFsClient } from "../../src/lakefs/client.ts";
import type { Task, Workflow } from "../../src/conductor/api.ts";
import { DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY } from "../../src/devstack/credentials.ts";
import { startConductorServer } from "../../src/devstack/conductor/server.ts";
import { taskVariableSuffix } from "../../src/config/task_settings.ts";
import { loadTask } from "../../src/task/loader.ts";
import { buildTaskDef } from "../../src/task/taskdef.ts";
import { waitFor } from "../../src/util/sleep.ts";
import { stopWorker, tail, type Worker } from "../_perago_process.ts";
import { realConductor, skipNote, uniqueSuffix } from "../_real_servers.ts";
import { oneTaskWorkflow, registerTaskModules, TestStack } from "../_stack.ts";

const MOD = new URL("../../mod.ts", import.meta.url).href;

/** A workspace-free task that sleeps `sleepMs`; `worker` options as given. */
const SLEEPER = (name: string, worker?: Record<string, number>) => `
import { defineTask, z } from ${JSON.stringify(MOD)};
export default defineTask({
  name: ${JSON.stringify(name)},
  ownerEmail: "tests@example.com",
  description: "task options test",
  params: z.object({ sleepMs: z.number().int().min(0) }),
  result: z.object({ slept: z.number() }),
  controls: { retry: { count: 0 }, timeout: { responseSeconds: 120 } },
  ${worker === undefined ? "" : `worker: ${JSON.stringify(worker)},`}
  async run(p, ctx) {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, p.sleepMs);
      ctx.signal.addEventListener("abort", () => { clearTimeout(timer); reject(ctx.signal.reason); });
    });
    return { slept: p.sleepMs };
  },
});
`;

interface Target {
  name: string;
  conductorUrl: string;
  /** Deadline for a workflow to finish. */
  slowMs: number;
}

interface Fixture {
  dir: string;
  api: ConductorClient;
  lakefsUrl: string;
  run: string;
  /** Writes and registers a task module (and a one-task workflow `<name>_wf`). */
  task(label: string, worker?: Record<string, number>): Promise<{ name: string; path: string }>;
  /** `perago start` with its own workspace root, `prefix` worker ids, `env` on top. */
  start(modules: string[], prefix: string, args: string[], env?: Record<string, string>): Worker;
  startWorkflow(
    name: string,
    sleepMs: number,
    taskToDomain?: Record<string, string>,
  ): Promise<string>;
  waitWorkflow(id: string, status: string, worker?: Worker): Promise<Workflow>;
}

async function withFixture(target: Target, fn: (fx: Fixture) => Promise<void>): Promise<void> {
  await using stack = await TestStack.start({
    dirPrefix: "perago-task-options-",
    servers: { conductor: { url: target.conductorUrl } },
    lakefs: { accessKeyId: DEMO_ACCESS_KEY_ID, secretAccessKey: DEMO_SECRET_ACCESS_KEY },
  });
  const dir = stack.dir;
  const api = new ConductorClient({ serverUrl: target.conductorUrl, requestTimeoutMs: 15_000 });
  const run = uniqueSuffix().replace(/[^a-z0-9]/g, "");
  const fixture: Fixture = {
    dir,
    api,
    lakefsUrl: stack.lakefs.url,
    run,
    async task(label, worker) {
      const name = `opt_${label}_${run}`;
      const path = await stack.writeModule(`${label}.ts`, SLEEPER(name, worker));
      await registerTaskModules(api, [path]);
      await api.upsertWorkflowDefs([oneTaskWorkflow(
        `${name}_wf`,
        { taskName: name, ref: "only", inputs: { params: "${workflow.input.params}" } },
        { slept: "${only.output.result.slept}" },
        "tests@example.com",
      )]);
      return { name, path };
    },
    start(modules, prefix, args, env = {}) {
      return stack.spawnWorker([...modules, ...args], {
        env: stack.peragoEnv({
          workerIdPrefix: prefix,
          workspaceRoot: `${dir}/ws-${prefix}`,
          logRoot: `${dir}/logs-${prefix}`,
          extra: env,
        }),
      });
    },
    startWorkflow(name, sleepMs, taskToDomain) {
      return api.startWorkflow(`${name}_wf`, { params: { sleepMs } }, {
        ...(taskToDomain === undefined ? {} : { taskToDomain }),
      });
    },
    async waitWorkflow(id, status, worker) {
      const log = () => (worker ? `\n${tail(worker.output())}` : "");
      // Any status but RUNNING ends the wait: a workflow that failed fails the test at once.
      const workflow = await waitFor(async () => {
        const wf = await api.getWorkflow(id);
        return wf.status === "RUNNING" ? undefined : wf;
      }, { timeoutMs: target.slowMs, intervalMs: 100, what: `workflow ${id} ${status}` })
        .catch((error) => {
          throw new Error(`${error.message}${log()}`);
        });
      if (workflow.status !== status) {
        const reasons = workflow.tasks.map((t) => `${t.status}: ${t.reasonForIncompletion}`);
        throw new Error(
          `workflow ${id} is ${workflow.status}, not ${status}: ${reasons.join("; ")}${log()}`,
        );
      }
      return workflow;
    },
  };
  await fn(fixture);
}

/** The only task of a one-task workflow. */
function only(workflow: Workflow): Task {
  assert.equal(workflow.tasks.length, 1, JSON.stringify(workflow.tasks));
  return workflow.tasks[0]!;
}

/** Most of `intervals` ([start, end), server ms) open at one instant. */
function maxOverlap(intervals: readonly [number, number][]): number {
  const events = intervals.flatMap(([start, end]) => [[start, 1], [end, -1]] as const)
    // At the same instant an end comes before a start: [a, b) and [b, c) do not overlap.
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let most = 0;
  for (const [, delta] of events) {
    open += delta;
    most = Math.max(most, open);
  }
  return most;
}

function interval(task: Task): [number, number] {
  const start = Number(task.startTime);
  const end = Number(task.endTime);
  assert.ok(start > 0 && end >= start, `server times of ${task.taskId}: ${start}..${end}`);
  return [start, end];
}

async function domainsRouteTasks(target: Target): Promise<void> {
  await withFixture(target, async (fx) => {
    const { name, path } = await fx.task("routed");
    const blue = `blue${fx.run}`;
    const inBlue = fx.start([path], "blue", ["-j", "1"], { PERAGO_TASK_DOMAIN: blue });
    // The plain supervisor names the type's own variable NO_DOMAIN over a global domain.
    const plain = fx.start([path], "plain", ["-j", "1"], {
      PERAGO_TASK_DOMAIN: `other${fx.run}`,
      [`PERAGO_TASK_DOMAIN_${taskVariableSuffix(name)}`]: "NO_DOMAIN",
    });
    const blueIds = await Promise.all(
      [0, 1, 2].map(() => fx.startWorkflow(name, 50, { [name]: blue })),
    );
    const plainIds = await Promise.all([0, 1, 2].map(() => fx.startWorkflow(name, 50)));
    for (const id of blueIds) {
      const task = only(await fx.waitWorkflow(id, "COMPLETED", inBlue));
      assert.equal(task.domain, blue);
      assert.match(String(task.workerId), /^blue\d{4}$/, "served by the blue supervisor");
    }
    for (const id of plainIds) {
      const task = only(await fx.waitWorkflow(id, "COMPLETED", plain));
      assert.ok(task.domain === undefined || task.domain === null, String(task.domain));
      assert.match(String(task.workerId), /^plain\d{4}$/, "served by the plain supervisor");
    }
    assert.match(inBlue.output(), new RegExp(`task ${name}: domain ${blue}`));
    assert.match(plain.output(), new RegExp(`task ${name}: domain none \\(default queue\\)`));
    assert.equal(await stopWorker(inBlue), 0, tail(inBlue.output()));
    assert.equal(await stopWorker(plain), 0, tail(plain.output()));
  });
}

async function concurrencyHolds(target: Target): Promise<void> {
  await withFixture(target, async (fx) => {
    const heavy = await fx.task("heavy", { concurrency: 1 });
    const light = await fx.task("light");
    const worker = fx.start([heavy.path, light.path], "capped", ["-j", "3"], {
      [`PERAGO_TASK_CONCURRENCY_${taskVariableSuffix(light.name)}`]: "2",
    });
    const ids = [
      ...await Promise.all([0, 1, 2, 3].map(() => fx.startWorkflow(heavy.name, 400))),
      ...await Promise.all([0, 1, 2, 3, 4, 5].map(() => fx.startWorkflow(light.name, 400))),
    ];
    const tasks = [];
    for (const id of ids) tasks.push(only(await fx.waitWorkflow(id, "COMPLETED", worker)));
    const heavyTimes = tasks.filter((t) => t.taskType === heavy.name).map(interval);
    const lightTimes = tasks.filter((t) => t.taskType === light.name).map(interval);
    assert.equal(heavyTimes.length, 4);
    assert.equal(
      maxOverlap(heavyTimes),
      1,
      `heavy attempts overlap: ${JSON.stringify(heavyTimes)}`,
    );
    assert.ok(maxOverlap(lightTimes) <= 2, `light over its cap: ${JSON.stringify(lightTimes)}`);
    // The other slots were used meanwhile: the cap is per type, not a lower -j.
    assert.ok(
      maxOverlap([...heavyTimes, ...lightTimes]) >= 2,
      `nothing ran beside the heavy task: ${JSON.stringify({ heavyTimes, lightTimes })}`,
    );
    assert.equal(await stopWorker(worker), 0, tail(worker.output()));
  });
}

async function pausingHolds(target: Target): Promise<void> {
  await withFixture(target, async (fx) => {
    const heavy = await fx.task("paused");
    const light = await fx.task("served");
    const worker = fx.start([heavy.path, light.path], "pausing", [
      "-j",
      "2",
      "--metrics-address",
      "127.0.0.1:0",
    ], { PERAGO_TASK_PAUSED: heavy.name });
    const held = await fx.startWorkflow(heavy.name, 10);
    const served = await Promise.all([0, 1, 2].map(() => fx.startWorkflow(light.name, 10)));
    for (const id of served) await fx.waitWorkflow(id, "COMPLETED", worker);
    // Every light task is done and the supervisor kept polling: the paused one was never
    // handed out.
    const pending = only(await fx.api.getWorkflow(held));
    assert.equal(pending.status, "SCHEDULED", JSON.stringify(pending));
    assert.ok(!pending.workerId, `polled by ${pending.workerId}`);
    assert.match(worker.output(), new RegExp(`task ${heavy.name}: paused`));
    const url = await waitFor(
      () => worker.output().match(/serving metrics on (http:\/\/\S+)\/metrics/)?.[1],
      { timeoutMs: 30_000, what: "metrics listener" },
    );
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(
      metrics,
      new RegExp(`^perago_task_paused\\{taskType="${heavy.name}",domain=""\\} 1$`, "m"),
    );
    assert.match(
      metrics,
      new RegExp(`^perago_task_paused\\{taskType="${light.name}",domain=""\\} 0$`, "m"),
    );
    assert.equal(await stopWorker(worker), 0, tail(worker.output()));
    // Unpaused, the same task is served: it was pollable all along.
    const resumed = fx.start([heavy.path], "resumed", ["-j", "1"]);
    assert.match(
      String(only(await fx.waitWorkflow(held, "COMPLETED", resumed)).workerId),
      /^resumed/,
    );
    assert.equal(await stopWorker(resumed), 0, tail(resumed.output()));
  });
}

/** A writable workspace task: writes `notes/out.txt`. */
const WRITER = (name: string) => `
import { defineTask, z } from ${JSON.stringify(MOD)};
export default defineTask({
  name: ${JSON.stringify(name)},
  ownerEmail: "tests@example.com",
  description: "writes notes/out.txt",
  params: z.object({ text: z.string() }),
  result: z.object({ bytes: z.number() }),
  workspace: { prefix: "notes/" },
  controls: { retry: { count: 0 }, timeout: { responseSeconds: 120 } },
  async run(p, ctx) {
    await Deno.mkdir(\`\${ctx.workspace}/notes\`, { recursive: true });
    await Deno.writeTextFile(\`\${ctx.workspace}/notes/out.txt\`, p.text);
    return { bytes: p.text.length };
  },
});
`;

async function writableInDomain(target: Target): Promise<void> {
  await withFixture(target, async (fx) => {
    const name = `opt_writer_${fx.run}`;
    const path = `${fx.dir}/writer.ts`;
    await Deno.writeTextFile(path, WRITER(name));
    await fx.api.registerTaskDefs([buildTaskDef((await loadTask(path)).task)]);
    await fx.api.upsertWorkflowDefs([{
      name: `${name}_wf`,
      version: 1,
      schemaVersion: 2,
      ownerEmail: "tests@example.com",
      tasks: [{
        name,
        taskReferenceName: "write",
        type: "SIMPLE",
        inputParameters: {
          workspace: "${workflow.input.workspace}",
          params: "${workflow.input.params}",
        },
      }],
      outputParameters: { workspace: "${write.output.workspace}" },
    }]);
    const lakefs = new LakeFsClient({
      endpointUrl: fx.lakefsUrl,
      accessKeyId: DEMO_ACCESS_KEY_ID,
      secretAccessKey: DEMO_SECRET_ACCESS_KEY,
    });
    const repo = `opt-${fx.run}`;
    await lakefs.createRepository(repo, `local://${repo}`, "main");
    const seed = (await lakefs.getBranch(repo, "main")).commit_id;
    const domain = `fenced${fx.run}`;
    const worker = fx.start([path], "fenced", ["-j", "1"], { PERAGO_TASK_DOMAIN: domain });
    const id = await fx.api.startWorkflow(`${name}_wf`, {
      workspace: { repository: repo, branch: "main", ref_type: "commit", ref: seed },
      params: { text: "from a domain" },
    }, { taskToDomain: { [name]: domain } });
    const workflow = await fx.waitWorkflow(id, "COMPLETED", worker);
    assert.equal(only(workflow).domain, domain);
    // Both fences passed for a task from a domain, and the published commit is the head.
    const ref = (workflow.output?.workspace as Record<string, string>).ref!;
    assert.equal((await lakefs.getBranch(repo, "main")).commit_id, ref);
    assert.notEqual(ref, seed);
    const text = await new Response(await lakefs.getObject(repo, ref, "notes/out.txt")).text();
    assert.equal(text, "from a domain");
    assert.equal(await stopWorker(worker), 0, tail(worker.output()));
  });
}

const SCENARIOS: [string, (target: Target) => Promise<void>][] = [
  [
    "a workflow started with taskToDomain is served only by the supervisor of that domain",
    domainsRouteTasks,
  ],
  [
    "worker.concurrency 1 under -j 3: never two attempts in flight (server times)",
    concurrencyHolds,
  ],
  ["a paused task type stays SCHEDULED while the others complete", pausingHolds],
  ["a writable task from a domain passes its fences and publishes", writableInDomain],
];

for (const [what, scenario] of SCENARIOS) {
  Deno.test(`task options (demo Conductor): ${what}`, async () => {
    await using server = await startConductorServer({ port: 0, sweepIntervalMs: 200 });
    await scenario({ name: "demo", conductorUrl: server.url, slowMs: 60_000 });
  });
}

const real = realConductor();
const skipReal = skipNote("task options against a real Conductor OSS", real);
for (const [what, scenario] of SCENARIOS) {
  Deno.test({
    name: `task options (real Conductor OSS): ${what}`,
    ignore: skipReal,
    fn: async () => {
      if ("skip" in real) return;
      await scenario({ name: "real", conductorUrl: real.url, slowMs: 120_000 });
    },
  });
}
