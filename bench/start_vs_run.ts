/**
 * The same attempt under `perago start -j 1` and under `perago run`, on the same repository
 * (2,600 small files on the real lakeFS; the real Conductor of `PERAGO_TEST_CONDUCTOR_URL`,
 * else the demo Conductor): a 1-file change each time, alternated, object cache off on both
 * sides so both download everything.
 *
 * Figures: Conductor's task time (startTime to endTime: poll, hand-off to the executor, the
 * attempt, the result update) and the executor's own attempt duration (from its JSONL log)
 * under `perago start`; the attempt duration `perago run` prints, and its whole wall time.
 *
 * @module
 */
import { join } from "node:path";
import type { ConductorApi } from "../src/conductor/api.ts";
import { ConductorClient } from "../src/conductor/client.ts";
import { startConductorServer } from "../src/devstack/conductor/server.ts";
import { stageChanges } from "../src/lakefs/sync.ts";
import { loadTask } from "../src/task/loader.ts";
import { buildTaskDef } from "../src/task/taskdef.ts";
import { waitFor } from "../src/util/sleep.ts";
import {
  type Bench,
  type BenchContext,
  type BenchResult,
  type Figure,
  median,
  ROOT,
  runCommand,
  type Size,
} from "./_common.ts";
import { startPerago } from "./_perago.ts";
import { benchRepoName, deleteRepository, realLakeFs, type RealLakeFsTarget } from "./_real.ts";

const SHAPES: Record<Size, { files: number; rounds: number }> = {
  quick: { files: 300, rounds: 2 },
  default: { files: 2_600, rounds: 4 },
  full: { files: 2_600, rounds: 8 },
};

function keyOf(i: number): string {
  return `docs/d${String(Math.floor(i / 100)).padStart(2, "0")}/f${String(i).padStart(4, "0")}.md`;
}

/** A copy of the touch task under a name unique to the run (the Conductor may be shared). */
async function taskModule(dir: string, name: string): Promise<string> {
  const path = join(dir, "touch_task.ts");
  const mod = new URL("../mod.ts", import.meta.url).href;
  await Deno.writeTextFile(
    path,
    `import { join } from "node:path";
import { defineTask, z } from "${mod}";
export default defineTask({
  name: "${name}",
  ownerEmail: "bench@example.com",
  description: "rewrites one file (benchmark)",
  params: z.object({ path: z.string() }),
  result: z.object({ ok: z.boolean() }),
  workspace: { prefix: "/" },
  controls: { retry: { count: 0 }, timeout: { responseSeconds: 600 } },
  async run({ path }, ctx) {
    await Deno.writeTextFile(join(ctx.workspace, path), "changed " + crypto.randomUUID() + "\\n");
    return { ok: true };
  },
});
`,
  );
  return path;
}

/** The attempt durations the executor logged (`attempt ... ended`), oldest first. */
async function loggedDurations(logRoot: string): Promise<number[]> {
  const found: { ts: string; ms: number }[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".jsonl")) {
        for (const line of (await Deno.readTextFile(path)).split("\n")) {
          if (!line.includes("ended")) continue;
          try {
            const record = JSON.parse(line);
            const ms = record.extra?.durationMs ?? record.durationMs;
            if (typeof ms === "number" && /ended/.test(String(record.message))) {
              found.push({ ts: String(record.ts), ms });
            }
          } catch { /* not a record */ }
        }
      }
    }
  };
  await walk(logRoot).catch(() => {});
  return found.sort((a, b) => a.ts < b.ts ? -1 : 1).map((entry) => entry.ms);
}

/** The start-vs-run benchmark. */
export const bench: Bench = {
  name: "start_vs_run",
  description: "the same attempt under perago start -j 1 and under perago run",
  async run(ctx: BenchContext): Promise<BenchResult> {
    const shape = SHAPES[ctx.size];
    const lakefs: RealLakeFsTarget = await realLakeFs(ctx.tempDir);
    const conductorUrl = Deno.env.get("PERAGO_TEST_CONDUCTOR_URL")?.trim();
    const demo = conductorUrl ? undefined : await startConductorServer({ sweepIntervalMs: 1000 });
    const serverUrl = conductorUrl || demo!.url;
    const api: ConductorApi = new ConductorClient({ serverUrl });
    const suffix = Date.now().toString(36);
    const repo = benchRepoName("start-run");
    const name = `bench_touch_${suffix}`;
    const workflow = `${name}_wf`;
    try {
      await lakefs.client.createRepository(repo, `local://${repo}`, "main");
      const uploads = [];
      for (let i = 0; i < shape.files; i++) {
        const data = new Uint8Array(4096);
        crypto.getRandomValues(data);
        uploads.push({ key: keyOf(i), size: 4096, open: () => Promise.resolve(data) });
      }
      await stageChanges(lakefs.client, {
        repo,
        branch: "main",
        uploads,
        deletes: [],
        concurrency: 16,
      });
      await lakefs.client.commit(repo, "main", "bench start_vs_run: seed");
      const module = await taskModule(ctx.tempDir, name);
      const { task } = await loadTask(module);
      await api.registerTaskDefs([buildTaskDef(task)]);
      await api.upsertWorkflowDefs([{
        name: workflow,
        version: 1,
        schemaVersion: 2,
        ownerEmail: "bench@example.com",
        tasks: [{
          name,
          taskReferenceName: "touch",
          type: "SIMPLE",
          inputParameters: {
            workspace: "${workflow.input.workspace}",
            params: "${workflow.input.params}",
          },
        }],
        outputParameters: {},
      }]);
      const startDir = join(ctx.tempDir, "start");
      await Deno.mkdir(startDir, { recursive: true });
      const perago = startPerago({
        conductorUrl: serverUrl,
        lakefsUrl: lakefs.url,
        accessKeyId: lakefs.accessKeyId,
        secretAccessKey: lakefs.secretAccessKey,
        modules: [module],
        concurrency: 1,
        tempDir: startDir,
        env: { PERAGO_OBJECT_CACHE_MAX_SIZE: "0", PERAGO_WARM_POOL_DIRS: "0" },
      });
      const taskMs: number[] = [];
      const queueMs: number[] = [];
      const runAttemptMs: number[] = [];
      const runWallMs: number[] = [];
      let n = 0;
      try {
        for (let round = 0; round < shape.rounds; round++) {
          for (const side of round % 2 === 0 ? ["start", "run"] : ["run", "start"]) {
            ctx.signal.throwIfAborted();
            const head = (await lakefs.client.getBranch(repo, "main")).commit_id;
            const input = {
              workspace: { repository: repo, branch: "main", ref_type: "commit", ref: head },
              params: { path: keyOf((n++ * 53) % shape.files) },
            };
            if (side === "start") {
              const id = await api.startWorkflow(workflow, input);
              const wf = await waitFor(async () => {
                const now = await api.getWorkflow(id);
                if (now.status === "FAILED" || now.status === "TERMINATED") {
                  throw new Error(`workflow ${id} ${now.status}: ${now.reasonForIncompletion}`);
                }
                return now.status === "COMPLETED" ? now : undefined;
              }, { timeoutMs: 300_000, intervalMs: 50, what: `workflow ${id}` }).catch((error) => {
                throw new Error(`${error.message}\n${perago.output().slice(-3000)}`);
              });
              const t = wf.tasks[0]!;
              taskMs.push((t.endTime ?? NaN) - (t.startTime ?? NaN));
              queueMs.push((t.startTime ?? NaN) - (t.scheduledTime ?? NaN));
            } else {
              const dir = await Deno.makeTempDir({ dir: ctx.tempDir, prefix: "run-" });
              const file = join(dir, "input.json");
              await Deno.writeTextFile(file, JSON.stringify(input));
              const started = performance.now();
              const { stdout } = await runCommand(
                Deno.execPath(),
                ["run", "-A", join(ROOT, "main.ts"), "run", module, "-i", file],
                {
                  cwd: dir,
                  env: {
                    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
                    HOME: Deno.env.get("HOME") ?? dir,
                    ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
                    NO_COLOR: "1",
                    LAKECTL_SERVER_ENDPOINT_URL: lakefs.url,
                    LAKECTL_CREDENTIALS_ACCESS_KEY_ID: lakefs.accessKeyId,
                    LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: lakefs.secretAccessKey,
                    PERAGO_WORKSPACE_ROOT: join(dir, "ws"),
                    PERAGO_LOG_ROOT: join(dir, "logs"),
                    PERAGO_OBJECT_CACHE_MAX_SIZE: "0",
                    PERAGO_WARM_POOL_DIRS: "0",
                  },
                },
              );
              runWallMs.push(performance.now() - started);
              const duration = /^duration: (\d+) ms$/m.exec(stdout)?.[1];
              runAttemptMs.push(Number(duration));
            }
          }
        }
      } finally {
        await perago.stop();
      }
      const executorMs = await loggedDurations(join(startDir, "logs"));
      const start = median(taskMs);
      const run = median(runAttemptMs);
      const figures: Figure[] = [
        {
          name: "start_task_ms",
          value: start,
          unit: "ms",
          note: "Conductor startTime to endTime under perago start -j 1",
        },
        {
          name: "start_executor_attempt_ms",
          value: executorMs.length > 0 ? median(executorMs) : NaN,
          unit: "ms",
          note: "the executor's attempt duration (its log)",
        },
        {
          name: "start_queue_ms",
          value: median(queueMs),
          unit: "ms",
          note: "Conductor scheduledTime to startTime (until the poll)",
        },
        {
          name: "run_attempt_ms",
          value: run,
          unit: "ms",
          note: "the attempt duration perago run prints",
        },
        { name: "run_wall_ms", value: median(runWallMs), unit: "ms", note: "whole perago run" },
        { name: "start_vs_run_ratio", value: start / run, unit: "ratio" },
      ];
      return {
        params: {
          files: `${shape.files} x 4096 B`,
          rounds: shape.rounds,
          lakefs: lakefs.label,
          conductor: conductorUrl ? `real Conductor at ${conductorUrl}` : "demo Conductor",
          objectCache: "off on both sides",
          warmPool: "off on both sides",
        },
        figures,
        targets: [{
          name: "start_vs_run_ratio",
          target: "<= 1.1",
          value: start / run,
          met: start / run <= 1.1,
        }],
        notes: [
          "Conductor's task time also holds the poll hand-off and the result update the " +
          "attempt duration leaves out; the two attempt durations compare the same work.",
        ],
      };
    } finally {
      await deleteRepository(lakefs, repo);
      await lakefs.close();
      await demo?.close();
    }
  },
};
