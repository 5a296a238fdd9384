/**
 * Scenario 6: hostile input. Each case gets a clear failed result (or, for a hang and an
 * out-of-memory executor, a clean FAILED attempt and a successful retry), and the worker
 * keeps serving other tasks. Scenario 7 rides along: no secret in any log, task log,
 * failure reason or console line.
 */
import assert from "node:assert/strict";
import { FaultInjector } from "../../src/devstack/faults.ts";
import {
  findSecretLeaks,
  leftoverAttemptDirs,
  leftoverStaging,
  readLogFiles,
  record,
  REPO,
  startChaosStack,
  startWorker,
  stopWorker,
  tail,
  waitRunning,
} from "./_harness.ts";

/** Answers malformed bodies for listings of chosen refs. */
class MalformedFaults extends FaultInjector {
  refs = new Set<string>();
  override async apply(request: Request): Promise<Response | undefined> {
    const path = new URL(request.url).pathname;
    for (const ref of this.refs) {
      if (path.endsWith(`/refs/${ref}/objects/ls`)) {
        return new Response("<html>not json</html>", {
          status: 200,
          headers: { "content-type": "application/json" },
        });
      }
    }
    return await super.apply(request);
  }
}

interface Case {
  name: string;
  start: () => Promise<string>;
  /** Expected workflow status. */
  status: "FAILED" | "COMPLETED";
  /** Must match some task's reasonForIncompletion. */
  reason: RegExp;
}

const SKIP_OOM = Deno.env.get("PERAGO_CHAOS_SKIP_OOM") === "1";

Deno.test("chaos 6+7: hostile input fails clearly, the worker keeps serving, no secret leaks", async () => {
  const started = Date.now();
  const faults = new MalformedFaults();
  await using stack = await startChaosStack({
    lakefsFaults: faults,
    responseSeconds: 5,
    timeoutSeconds: 5,
    retries: 1,
  });
  await using worker = startWorker(stack, ["-j", "2"]);
  await waitRunning(worker);
  const withObjects = async (id: string, files: Record<string, string>) =>
    await stack.startTask(id, {}, { ref: await stack.branchWith(id, files), branchExists: true });
  const malformedRef = await stack.branchWith("malformed", { "data/m.txt": "m" });
  faults.refs.add(malformedRef);
  const cases: Case[] = [
    {
      name: "traversal key data/../../x",
      start: () => withObjects("trav", { "data/../../escape.txt": "x" }),
      status: "FAILED",
      reason: /\.\.|unsafe|outside/i,
    },
    {
      name: "absolute key data//abs",
      start: () => withObjects("abs", { "data//etc/abs.txt": "x" }),
      status: "FAILED",
      reason: /absolute|unsafe|empty|\/\//i,
    },
    {
      name: "backslash key data/a\\b",
      start: () => withObjects("bslash", { "data/a\\b.txt": "x" }),
      status: "FAILED",
      reason: /backslash|unsafe|\\/i,
    },
    {
      name: "symlink made by the task",
      start: () => stack.startTask("symlink", { mode: "symlink" }),
      status: "FAILED",
      reason: /symlink/i,
    },
    {
      name: "huge params (4 MB)",
      start: () => stack.startTask("huge", { blob: "x".repeat(4 * 1024 * 1024) }),
      status: "COMPLETED",
      reason: /^$/,
    },
    {
      name: "unknown param key",
      start: () => stack.startTask("unknown", { bogus: 1 }),
      status: "FAILED",
      reason: /bogus|unrecognized|unknown/i,
    },
    {
      name: "wrong param type",
      start: () => stack.startTask("wrongtype", { sleepMs: "soon" }),
      status: "FAILED",
      reason: /sleepMs|number/i,
    },
    {
      name: "missing param",
      start: async () => {
        await stack.lakefs.createBranch(REPO, "t-missing", stack.seedCommit);
        return await stack.api.startWorkflow(`${stack.taskName}_wf`, {
          workspace: {
            repository: REPO,
            branch: "t-missing",
            ref_type: "commit",
            ref: stack.seedCommit,
          },
          params: {},
        });
      },
      status: "FAILED",
      reason: /id/,
    },
    {
      name: "params not an object (invalid JSON text)",
      start: () =>
        stack.api.startWorkflow(`${stack.taskName}_wf`, {
          workspace: {
            repository: REPO,
            branch: "main",
            ref_type: "commit",
            ref: stack.seedCommit,
          },
          params: "{not json",
        }),
      status: "FAILED",
      reason: /invalid params.*expected object/i,
    },
    {
      name: "missing workspace input",
      start: () => stack.api.startWorkflow(`${stack.taskName}_wf`, { params: { id: "nows" } }),
      status: "FAILED",
      reason: /workspace/i,
    },
    {
      name: "malformed lakeFS listing",
      start: () => stack.startTask("malformed", {}, { ref: malformedRef, branchExists: true }),
      status: "FAILED",
      reason: /json|malformed|invalid|unexpected/i,
    },
    {
      name: "task never returns (timeout.seconds 5)",
      start: () => stack.startTask("hang", { mode: "hang" }),
      status: "COMPLETED",
      // The executor aborts it at timeout.seconds (asserted below on its log); the server
      // may have timed it out first with the same budget.
      reason: /timeout\.seconds|timed out/,
    },
    ...(SKIP_OOM ? [] : [{
      name: "task exhausts its memory (executor OOM)",
      start: () => stack.startTask("oom", { mode: "oom" }),
      status: "COMPLETED" as const,
      // The executor dies (SIGTRAP/SIGABRT), unless the server's timeout.seconds came first.
      reason: /exited during the attempt|timed out/,
    }]),
  ];
  const ids: string[] = [];
  for (const c of cases) ids.push(await c.start());
  const done = await stack.waitAll(ids, 120_000).catch((error) => {
    throw new Error(`${error.message}\n${tail(worker.output())}`);
  });
  // Still serving: a plain task after all of that.
  const okId = await stack.startTask("after", {});
  const [after] = await stack.waitAll([okId], 30_000);
  const problems: string[] = [];
  const reasons: string[] = [];
  for (const [i, wf] of done.entries()) {
    const c = cases[i]!;
    const taskReasons = wf.tasks.map((t) => String(t.reasonForIncompletion ?? ""));
    reasons.push(...taskReasons);
    if (Deno.env.get("PERAGO_CHAOS_VERBOSE") === "1") {
      const line = `${c.name}: ${wf.status} ${taskReasons.join(" | ").slice(0, 400)}\n`;
      Deno.stdout.writeSync(new TextEncoder().encode(line));
    }
    const reasonOk = c.reason.source === "^$" || taskReasons.some((r) => c.reason.test(r));
    if (wf.status !== c.status || !reasonOk) {
      problems.push(
        `${c.name}: ${wf.status} ${
          wf.tasks.map((t) => `${t.status}:${t.reasonForIncompletion ?? ""}`).join(" | ")
        }`,
      );
    }
  }
  if (after!.status !== "COMPLETED") problems.push(`after: ${after!.status}`);
  if (!/ran past controls\.timeout\.seconds/.test(worker.output())) {
    problems.push("the hung attempt was not aborted by the executor");
  }
  const escaped = await Deno.stat(`${stack.dir}/escape.txt`).then(() => true, () => false);
  if (escaped) problems.push("a traversal key wrote outside the attempt dir");
  assert.equal(await stopWorker(worker), 0, tail(worker.output()));
  const logs = await readLogFiles(stack.logRoot);
  const leaks = await findSecretLeaks(stack, [worker.output(), ...reasons]);
  record({
    scenario: "6 hostile input",
    runs: cases.length + 1,
    passed: cases.length + 1 - problems.length,
    lost: after!.status === "COMPLETED" ? 0 : 1,
    duplicated: 0,
    seconds: (Date.now() - started) / 1000,
    note: SKIP_OOM ? "OOM case skipped (PERAGO_CHAOS_SKIP_OOM=1)" : "",
  });
  record({
    scenario: "7 secrets",
    runs: logs.length + reasons.length + 1,
    passed: leaks.length === 0 ? logs.length + reasons.length + 1 : 0,
    lost: 0,
    duplicated: 0,
    seconds: 0,
    note: `${logs.length} log files, ${reasons.length} reasons, console; ${leaks.length} leaks`,
  });
  assert.deepEqual(problems, [], tail(worker.output(), 30));
  assert.deepEqual(leaks, [], "no secret in logs, reasons or console");
  assert.ok(logs.length > 0, "log files were written");
  assert.deepEqual(await leftoverStaging(stack), []);
  assert.deepEqual(await leftoverAttemptDirs(stack), []);
});
