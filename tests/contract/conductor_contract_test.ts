/**
 * One contract suite of perago's Conductor client against a Conductor server: always the
 * demo server, and the real Conductor OSS when `PERAGO_TEST_CONDUCTOR_URL` is set (start one
 * with `scripts/conductor_oss.sh start`). Names are unique per run: the real server keeps
 * state between runs.
 */
import assert from "node:assert/strict";
import { ConductorClient } from "../../src/conductor/client.ts";
import { ConductorError, ConductorNotFoundError } from "../../src/conductor/errors.ts";
import type { Task, TaskDef, WorkflowTaskDef } from "../../src/conductor/api.ts";
import { startConductorServer } from "../../src/devstack/conductor/server.ts";
import { waitFor } from "../../src/util/sleep.ts";
import { realConductor, skipNote } from "../_real_servers.ts";
import {
  briefTask as brief,
  dynamicForkAndJoin,
  forkAndJoin,
  simple,
  STATIC_FORK_AFTER_INPUT,
  STATIC_FORK_JOINED,
  STATIC_FORK_OUTPUT,
  staticForkStarted,
  staticForkTasks,
} from "../_fork_flows.ts";

interface Target {
  name: string;
  url: string;
  /** Deadline for things the server does in the background (sweeps, retries). */
  slowMs: number;
  real: boolean;
}

const RUN = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

async function contractSuite(t: Deno.TestContext, target: Target): Promise<void> {
  const client = new ConductorClient({ serverUrl: target.url, requestTimeoutMs: 15_000 });
  const api = `${target.url.replace(/\/+$/, "").replace(/\/api$/, "")}/api`;
  let n = 0;
  const unique = (what: string) => `perago_ct_${RUN}_${what}_${++n}`;

  async function setup(
    what: string,
    def: Partial<TaskDef> = {},
    refs: string[] = ["a"],
    input: Record<string, unknown> = {},
  ) {
    const taskType = unique(what);
    await client.registerTaskDefs([{
      name: taskType,
      ownerEmail: "contract@example.com",
      retryCount: 0,
      retryLogic: "FIXED",
      retryDelaySeconds: 0,
      responseTimeoutSeconds: 300,
      timeoutSeconds: 0,
      ...def,
    }]);
    const workflowName = `${taskType}_wf`;
    await client.upsertWorkflowDefs([{
      name: workflowName,
      version: 1,
      schemaVersion: 2,
      ownerEmail: "contract@example.com",
      tasks: refs.map((ref, i) => ({
        name: taskType,
        taskReferenceName: ref,
        type: "SIMPLE",
        inputParameters: i === 0
          ? { x: "${workflow.input.x}", deep: "${workflow.input.nested.deep}", lit: 7 }
          : { y: "${" + refs[i - 1] + ".output.y}", all: "${" + refs[i - 1] + ".output}" },
      })),
      outputParameters: { out: "${" + refs[refs.length - 1] + ".output.z}", fixed: "F" },
    }]);
    const workflowId = await client.startWorkflow(workflowName, input);
    return { taskType, workflowName, workflowId };
  }

  async function pollOne(taskType: string, workerId = "contract-worker"): Promise<Task> {
    return await waitFor(async () => {
      const tasks = await client.pollBatch(taskType, { count: 1, timeoutMs: 1000, workerId });
      return tasks[0];
    }, { timeoutMs: target.slowMs, what: `a ${taskType} task to poll`, intervalMs: 1 });
  }

  async function waitWorkflow(workflowId: string, status: string) {
    return await waitFor(async () => {
      const wf = await client.getWorkflow(workflowId);
      return wf.status === status ? wf : undefined;
    }, { timeoutMs: target.slowMs, what: `workflow ${workflowId} ${status}`, intervalMs: 50 });
  }

  /** Waits until the server clock has moved past `ms` (timestamps have ms resolution). */
  async function clockPast(ms: number) {
    await waitFor(() => Date.now() > ms + 5, {
      timeoutMs: 1000,
      what: "clock to move",
      intervalMs: 2,
    });
  }

  await t.step("health", async () => {
    assert.equal(await client.health(), true);
  });

  await t.step("task defs: register, read back, update, 404 for a missing one", async () => {
    const name = unique("def");
    await client.registerTaskDefs([{ name, ownerEmail: "c@example.com", retryCount: 2 }]);
    const def = await client.getTaskDef(name);
    assert.equal(def?.name, name);
    assert.equal(def?.retryCount, 2);
    await client.updateTaskDef({ name, ownerEmail: "c@example.com", retryCount: 5 });
    assert.equal((await client.getTaskDef(name))?.retryCount, 5);
    assert.equal(await client.getTaskDef(unique("missing")), undefined);
    // A TaskDef as `perago extract` writes it (fields OSS 3.21 does not know are dropped).
    const extracted = unique("extracted");
    await client.registerTaskDefs([{
      name: extracted,
      ownerEmail: "c@example.com",
      description: "d",
      retryCount: 3,
      retryLogic: "FIXED",
      retryDelaySeconds: 60,
      maxRetryDelaySeconds: 0,
      backoffJitterMs: 0,
      totalTimeoutSeconds: 0,
      timeoutPolicy: "TIME_OUT_WF",
      timeoutSeconds: 0,
      responseTimeoutSeconds: 600,
      pollTimeoutSeconds: 0,
      inputKeys: ["params"],
      outputKeys: ["result"],
      inputSchema: {
        name: `${extracted}.input`,
        version: 1,
        type: "JSON",
        data: { type: "object" },
      },
      outputSchema: {
        name: `${extracted}.output`,
        version: 1,
        type: "JSON",
        data: { type: "object" },
      },
    }]);
    const back = await client.getTaskDef(extracted);
    assert.deepEqual(back?.inputKeys, ["params"]);
    assert.equal(back?.responseTimeoutSeconds, 600);
  });

  await t.step("workflow defs: POST twice is refused; PUT upserts", async () => {
    const name = unique("wfdef");
    await client.registerTaskDefs([{ name, ownerEmail: "c@example.com" }]);
    const def = {
      name,
      version: 1,
      schemaVersion: 2 as const,
      ownerEmail: "c@example.com",
      tasks: [{ name, taskReferenceName: "only", type: "SIMPLE" as const }],
    };
    await client.registerWorkflowDef(def);
    const again = await client.registerWorkflowDef(def).then(() => undefined, (e) => e);
    assert.ok(again instanceof ConductorError, "second POST of the same name+version must fail");
    // Not a 409: Conductor OSS 3.21.14 answers 500 "Workflow with X.1 already exists!".
    assert.equal(again.status, 500);
    assert.match(again.message, new RegExp(`Workflow with ${name}\\.1 already exists!`));
    await client.upsertWorkflowDefs([def, { ...def, version: 2 }]);
  });

  await t.step("empty batch poll answers []", async () => {
    const tasks = await client.pollBatch(unique("empty"), {
      count: 3,
      timeoutMs: 100,
      workerId: "w",
    });
    assert.deepEqual(tasks, []);
  });

  await t.step("poll timeout over 5000 ms is a 400", async () => {
    const error = await client.pollBatch(unique("long"), {
      count: 1,
      timeoutMs: 5001,
      workerId: "w",
    }).then(() => undefined, (e) => e);
    assert.ok(error instanceof ConductorError);
    assert.equal(error.status, 400);
    assert.match(error.message, /^Conductor pollBatch failed: 400 /);
  });

  await t.step("poll marks IN_PROGRESS with workerId; getTask shows the fields", async () => {
    const { taskType, workflowId } = await setup("fields", { responseTimeoutSeconds: 123 }, [
      "a",
    ], { x: 1, nested: { deep: "D" } });
    const polled = await pollOne(taskType, "worker-fields");
    assert.equal(polled.status, "IN_PROGRESS");
    assert.equal(polled.workerId, "worker-fields");
    assert.equal(polled.workflowInstanceId, workflowId);
    assert.equal(polled.referenceTaskName, "a");
    assert.equal(polled.retryCount, 0);
    assert.equal(polled.pollCount, 1);
    assert.deepEqual(polled.inputData, { x: 1, deep: "D", lit: 7 });
    const task = await client.getTask(polled.taskId);
    assert.equal(task.status, "IN_PROGRESS");
    assert.equal(task.taskId, polled.taskId);
    assert.equal(task.workflowInstanceId, workflowId);
    assert.equal(task.retryCount, 0);
    assert.equal(task.referenceTaskName, "a");
    assert.equal(task.seq, 1);
    assert.equal(task.iteration, 0);
    assert.equal(task.responseTimeoutSeconds, 123);
    assert.equal(task.workerId, "worker-fields");
    assert.equal(task.taskDefName, taskType);
    assert.equal(task.taskType, taskType);
    assert.equal(typeof task.updateTime, "number");
    assert.ok((task.startTime ?? 0) > 0);
    assert.deepEqual(task.inputData, { x: 1, deep: "D", lit: 7 });
  });

  await t.step(
    "IN_PROGRESS + extendLease: status stays, updateTime moves, output kept",
    async () => {
      const { taskType, workflowId } = await setup("lease");
      const polled = await pollOne(taskType);
      const before = await client.getTask(polled.taskId);
      await clockPast(before.updateTime ?? 0);
      const echoed = await client.updateTask({
        workflowInstanceId: workflowId,
        taskId: polled.taskId,
        status: "IN_PROGRESS",
        extendLease: true,
        outputData: { heartbeat: 1 },
        workerId: "contract-worker",
      });
      assert.equal(echoed, polled.taskId);
      const after = await client.getTask(polled.taskId);
      assert.equal(after.status, "IN_PROGRESS");
      assert.ok((after.updateTime ?? 0) > (before.updateTime ?? 0), "updateTime must move");
      assert.deepEqual(after.outputData ?? {}, {});
      assert.equal(after.pollCount, before.pollCount);
    },
  );

  await t.step(
    "taskToDomain: a task in a domain is handed only to polls of that domain",
    async () => {
      const { taskType, workflowName } = await setup("domain");
      await pollOne(taskType); // the set-up's own workflow, started without a domain
      const blue = `blue${RUN}`;
      const pollIn = (domain: string | undefined, timeoutMs = 200) =>
        client.pollBatch(taskType, {
          count: 1,
          timeoutMs,
          workerId: "domain-worker",
          ...(domain === undefined ? {} : { domain }),
        });
      const pollOneIn = (domain: string | undefined) =>
        waitFor(async () => (await pollIn(domain, 1000))[0], {
          timeoutMs: target.slowMs,
          what: `a ${taskType} task in domain ${domain}`,
          intervalMs: 1,
        });
      const inBlue = await client.startWorkflow(workflowName, {}, {
        taskToDomain: { [taskType]: blue },
      });
      assert.equal((await client.getWorkflow(inBlue)).taskToDomain?.[taskType], blue);
      const task = await pollOneIn(blue);
      assert.equal(task.workflowInstanceId, inBlue);
      assert.equal(task.domain, blue);
      assert.deepEqual(await pollIn(undefined), [], "the default queue does not see it");
      // Results and look-ups need no domain.
      assert.equal((await client.getTask(task.taskId)).domain, blue);
      await client.updateTask({
        workflowInstanceId: inBlue,
        taskId: task.taskId,
        status: "COMPLETED",
        outputData: { z: 1 },
      });
      await waitWorkflow(inBlue, "COMPLETED");
      // Another domain never sees a blue task; "*" applies to every task.
      const inRed = await client.startWorkflow(workflowName, {}, {
        taskToDomain: { "*": `red${RUN}` },
      });
      assert.deepEqual(await pollIn(blue), []);
      assert.equal((await pollOneIn(`red${RUN}`)).workflowInstanceId, inRed);
      // A list: the first domain polled lately wins, else the last; NO_DOMAIN last = no domain.
      const preferBlue = await client.startWorkflow(workflowName, {}, {
        taskToDomain: { [taskType]: `idle${RUN},${blue}` },
      });
      assert.equal((await pollOneIn(blue)).workflowInstanceId, preferBlue);
      const noDomain = await client.startWorkflow(workflowName, {}, {
        taskToDomain: { [taskType]: `idle${RUN},NO_DOMAIN` },
      });
      assert.equal((await pollOneIn(undefined)).workflowInstanceId, noDomain);
    },
  );

  await t.step("IN_PROGRESS without extendLease re-queues the task (not a heartbeat)", async () => {
    const { taskType, workflowId } = await setup("requeue");
    const polled = await pollOne(taskType);
    await client.updateTask({
      workflowInstanceId: workflowId,
      taskId: polled.taskId,
      status: "IN_PROGRESS",
      callbackAfterSeconds: 0,
      outputData: { partial: 1 },
    });
    const after = await client.getTask(polled.taskId);
    assert.equal(after.status, "SCHEDULED");
    assert.deepEqual(after.outputData, { partial: 1 });
    const again = await pollOne(taskType, "second-worker");
    assert.equal(again.taskId, polled.taskId);
    assert.equal(again.pollCount, 2);
    assert.equal(again.workerId, "second-worker");
  });

  await t.step(
    "IN_PROGRESS with callbackAfterSeconds: SCHEDULED, no poll gets it before the delay, the next one after does",
    async () => {
      const { taskType, workflowId } = await setup("callback");
      const polled = await pollOne(taskType);
      await client.updateTask({
        workflowInstanceId: workflowId,
        taskId: polled.taskId,
        status: "IN_PROGRESS",
        callbackAfterSeconds: 2,
        outputData: { step: 1 },
        workerId: "contract-worker",
      });
      const updatedAt = Date.now();
      const waiting = await client.getTask(polled.taskId);
      assert.equal(waiting.status, "SCHEDULED");
      assert.equal(waiting.callbackAfterSeconds, 2);
      assert.equal(waiting.pollCount, 1);
      assert.deepEqual(waiting.outputData, { step: 1 });
      // Not visible during the delay: a poll that waits 1 s comes back empty, and whichever
      // poll gets it does so only once the delay has passed.
      const early = await client.pollBatch(taskType, {
        count: 1,
        timeoutMs: 1000,
        workerId: "late-worker",
      });
      const again = early[0] ?? await pollOne(taskType, "late-worker");
      assert.ok(Date.now() - updatedAt >= 1500, "handed out again before callbackAfterSeconds");
      assert.equal(again.taskId, polled.taskId);
      assert.equal(again.status, "IN_PROGRESS");
      assert.equal(again.pollCount, 2);
      assert.equal(again.workerId, "late-worker");
      assert.equal(again.callbackAfterSeconds ?? 0, 0);
      assert.deepEqual(again.outputData, { step: 1 });
      // It completes as usual from there.
      await client.updateTask({
        workflowInstanceId: workflowId,
        taskId: again.taskId,
        status: "COMPLETED",
        outputData: { z: "done" },
      });
      await waitWorkflow(workflowId, "COMPLETED");
    },
  );

  await t.step("COMPLETED advances the workflow and its output maps", async () => {
    const { taskType, workflowId } = await setup("complete", {}, ["first", "second"], { x: "X" });
    const first = await pollOne(taskType);
    assert.equal(first.referenceTaskName, "first");
    await client.updateTask({
      workflowInstanceId: workflowId,
      taskId: first.taskId,
      status: "COMPLETED",
      outputData: { y: "Y", z: 1 },
    });
    const second = await pollOne(taskType);
    assert.equal(second.referenceTaskName, "second");
    assert.equal(second.seq, 2);
    assert.deepEqual(second.inputData, { y: "Y", all: { y: "Y", z: 1 } });
    await client.updateTask({
      workflowInstanceId: workflowId,
      taskId: second.taskId,
      status: "COMPLETED",
      outputData: { z: "Z" },
    });
    const wf = await waitWorkflow(workflowId, "COMPLETED");
    assert.deepEqual(wf.output, { out: "Z", fixed: "F" });
    assert.deepEqual(wf.input, { x: "X" });
    assert.deepEqual(wf.tasks.map((task) => task.status), ["COMPLETED", "COMPLETED"]);

    // An update to a terminal task is a no-op 200.
    const echoed = await client.updateTask({
      workflowInstanceId: workflowId,
      taskId: second.taskId,
      status: "FAILED",
      reasonForIncompletion: "late",
      outputData: { z: "changed" },
    });
    assert.equal(echoed, second.taskId);
    const unchanged = await client.getTask(second.taskId);
    assert.equal(unchanged.status, "COMPLETED");
    assert.deepEqual(unchanged.outputData, { z: "Z" });
    assert.equal((await client.getWorkflow(workflowId)).status, "COMPLETED");
  });

  await t.step(
    "update-v2 applies the result and hands over the next task of the type",
    async () => {
      const { taskType, workflowId } = await setup("v2", {}, ["first", "second"], { x: "X" });
      const first = await pollOne(taskType);
      const next = await client.updateTaskV2({
        workflowInstanceId: workflowId,
        taskId: first.taskId,
        status: "COMPLETED",
        outputData: { y: "Y" },
        workerId: "v2-worker",
      });
      assert.equal(next?.referenceTaskName, "second");
      assert.equal(next?.status, "IN_PROGRESS");
      assert.deepEqual(next?.inputData, { y: "Y", all: { y: "Y" } });
      assert.equal((await client.getTask(first.taskId)).status, "COMPLETED");
      assert.equal((await client.getTask(next!.taskId)).workerId, "v2-worker");
      // Nothing queued: the update alone.
      const none = await client.updateTaskV2({
        workflowInstanceId: workflowId,
        taskId: next!.taskId,
        status: "COMPLETED",
        outputData: { z: "Z" },
        workerId: "v2-worker",
      });
      assert.equal(none, undefined);
      await waitWorkflow(workflowId, "COMPLETED");

      // The next task comes from the finished task's domain, never the default queue.
      const domain = `d${RUN}`;
      const inDomain = await client.startWorkflow(`${taskType}_wf`, { x: 1 }, {
        taskToDomain: { [taskType]: domain },
      });
      await client.startWorkflow(`${taskType}_wf`, { x: 2 });
      const head = await waitFor(
        async () =>
          (await client.pollBatch(taskType, { count: 1, timeoutMs: 1000, workerId: "w", domain }))[
            0
          ],
        {
          timeoutMs: target.slowMs,
          what: "a task in the domain",
          intervalMs: 1,
        },
      );
      const sibling = await client.updateTaskV2({
        workflowInstanceId: inDomain,
        taskId: head.taskId,
        status: "COMPLETED",
        outputData: { y: 1 },
        workerId: "v2-worker",
      });
      assert.equal(sibling?.workflowInstanceId, inDomain);
      assert.equal(sibling?.referenceTaskName, "second");
    },
  );

  await t.step(
    "FAILED is retried with retryCount+1 and retriedTaskId, then fails the workflow",
    async () => {
      const { taskType, workflowId } = await setup("retry", { retryCount: 1 });
      const first = await pollOne(taskType);
      await client.updateTask({
        workflowInstanceId: workflowId,
        taskId: first.taskId,
        status: "FAILED",
        reasonForIncompletion: "boom one",
      });
      const retried = await pollOne(taskType);
      assert.notEqual(retried.taskId, first.taskId);
      assert.equal(retried.retryCount, 1);
      assert.equal(retried.retriedTaskId, first.taskId);
      assert.equal(retried.referenceTaskName, "a");
      assert.deepEqual(retried.inputData, first.inputData);
      assert.equal((await client.getTask(first.taskId)).status, "FAILED");
      await client.updateTask({
        workflowInstanceId: workflowId,
        taskId: retried.taskId,
        status: "FAILED",
        reasonForIncompletion: "boom two",
      });
      const wf = await waitWorkflow(workflowId, "FAILED");
      assert.match(wf.reasonForIncompletion ?? "", /boom two/);
      assert.equal(wf.tasks.length, 2);
    },
  );

  await t.step(
    "a FAILED task whose retry completes: the workflow completes and still names it as failed",
    async () => {
      const { taskType, workflowId } = await setup("healed", { retryCount: 1 });
      const first = await pollOne(taskType);
      await client.updateTask({
        workflowInstanceId: workflowId,
        taskId: first.taskId,
        status: "FAILED",
        reasonForIncompletion: "flaky",
      });
      const retried = await pollOne(taskType);
      await client.updateTask({
        workflowInstanceId: workflowId,
        taskId: retried.taskId,
        status: "COMPLETED",
        outputData: { ok: true },
      });
      const wf = await waitWorkflow(workflowId, "COMPLETED");
      assert.equal(wf.reasonForIncompletion ?? null, null);
      assert.deepEqual(wf.tasks.map((task) => [task.status, task.retryCount, task.retried]), [
        ["FAILED", 0, true],
        ["COMPLETED", 1, false],
      ]);
      assert.deepEqual(wf.failedReferenceTaskNames, ["a"]);
      assert.deepEqual(wf.failedTaskNames, [taskType]);
    },
  );

  await t.step("FAILED_WITH_TERMINAL_ERROR fails the workflow at once", async () => {
    const { taskType, workflowId } = await setup("terminal", { retryCount: 3 });
    const task = await pollOne(taskType);
    await client.updateTask({
      workflowInstanceId: workflowId,
      taskId: task.taskId,
      status: "FAILED_WITH_TERMINAL_ERROR",
      reasonForIncompletion: "bad input",
    });
    const wf = await waitWorkflow(workflowId, "FAILED");
    assert.equal(wf.tasks.length, 1);
    assert.equal(wf.tasks[0]?.status, "FAILED_WITH_TERMINAL_ERROR");
    // The reason names the workflow's status, not the task's.
    assert.equal(
      wf.reasonForIncompletion,
      `Task ${task.taskId} failed with status: FAILED and reason: 'bad input'`,
    );
    assert.deepEqual(wf.failedReferenceTaskNames, ["a"]);
    const none = await client.pollBatch(taskType, { count: 1, timeoutMs: 200, workerId: "w" });
    assert.deepEqual(none, []);
  });

  // ---- forks: FORK_JOIN, FORK_JOIN_DYNAMIC and JOIN (the real server evaluates a JOIN in the
  // background, so what follows a JOIN is waited for, never assumed at once).

  /** A task type (no retries) and a workflow of `build(taskType)`; returns both names. */
  async function forkSetup(
    what: string,
    build: (taskType: string) => WorkflowTaskDef[],
    outputParameters: Record<string, unknown> = {},
  ) {
    const taskType = unique(what);
    await client.registerTaskDefs([{
      name: taskType,
      ownerEmail: "contract@example.com",
      retryCount: 0,
      retryDelaySeconds: 0,
      responseTimeoutSeconds: 300,
    }]);
    const workflowName = `${taskType}_wf`;
    await client.upsertWorkflowDefs([{
      name: workflowName,
      version: 1,
      schemaVersion: 2,
      ownerEmail: "contract@example.com",
      tasks: build(taskType),
      outputParameters,
    }]);
    return { taskType, workflowName };
  }

  /** Polls until `n` tasks of `taskType` are in hand. */
  async function pollN(taskType: string, n: number): Promise<Map<string, Task>> {
    const byRef = new Map<string, Task>();
    await waitFor(async () => {
      const tasks = await client.pollBatch(taskType, {
        count: n - byRef.size,
        timeoutMs: 500,
        workerId: "contract-worker",
      });
      for (const task of tasks) byRef.set(task.referenceTaskName, task);
      return byRef.size >= n;
    }, { timeoutMs: target.slowMs, what: `${n} ${taskType} tasks to poll`, intervalMs: 1 });
    return byRef;
  }

  async function complete(task: Task, outputData: Record<string, unknown>) {
    await client.updateTask({
      workflowInstanceId: task.workflowInstanceId,
      taskId: task.taskId,
      status: "COMPLETED",
      outputData,
    });
  }

  await t.step("static fork: FORK, branch heads, JOIN; the JOIN maps refs to outputs", async () => {
    const { taskType, workflowName } = await forkSetup(
      "fork",
      staticForkTasks,
      STATIC_FORK_OUTPUT,
    );
    const workflowId = await client.startWorkflow(workflowName, { x: "X" });
    const started = await client.getWorkflow(workflowId);
    assert.deepEqual(started.tasks.map(brief), staticForkStarted(taskType));
    const [fork, , , join] = started.tasks;
    assert.equal(fork?.taskDefName, "FORK");
    assert.deepEqual(fork?.inputData, { fx: "X" });
    assert.deepEqual(fork?.outputData, {});
    assert.equal(join?.taskDefName, "JOIN");
    assert.deepEqual(join?.inputData, { joinOn: ["a2", "b1"] });

    const heads = await pollN(taskType, 2);
    assert.deepEqual([...heads.keys()].sort(), ["a1", "b1"]);
    assert.deepEqual(heads.get("a1")?.inputData, { x: "X" });
    await complete(heads.get("a1")!, { v: "out-a1" });
    await complete(heads.get("b1")!, { v: "out-b1" });
    const a2 = await pollOne(taskType);
    assert.equal(a2.referenceTaskName, "a2");
    assert.equal(a2.seq, 5);
    assert.deepEqual(a2.inputData, { prev: "out-a1" });
    await complete(a2, { v: "out-a2" });

    const after = await pollOne(taskType);
    assert.equal(after.referenceTaskName, "after");
    assert.equal(after.seq, 6);
    const joined = STATIC_FORK_JOINED;
    assert.deepEqual(after.inputData, STATIC_FORK_AFTER_INPUT);
    const doneJoin = (await client.getWorkflow(workflowId)).tasks[3];
    assert.equal(doneJoin?.status, "COMPLETED");
    assert.deepEqual(doneJoin?.outputData, joined);
    await complete(after, { v: "out-after" });
    const wf = await waitWorkflow(workflowId, "COMPLETED");
    assert.deepEqual(wf.output, { j: joined });
  });

  await t.step("a branch task that fails for good fails the workflow", async () => {
    const { taskType, workflowName } = await forkSetup(
      "forkfail",
      (type) => forkAndJoin([[simple(type, "a")], [simple(type, "b")]], ["a", "b"]),
    );
    const workflowId = await client.startWorkflow(workflowName, {});
    const heads = await pollN(taskType, 2);
    const failed = heads.get("a")!;
    await client.updateTask({
      workflowInstanceId: workflowId,
      taskId: failed.taskId,
      status: "FAILED",
      reasonForIncompletion: "branch a broke",
    });
    const wf = await waitWorkflow(workflowId, "FAILED");
    assert.equal(
      wf.reasonForIncompletion,
      `Task ${failed.taskId} failed with status: FAILED and reason: 'branch a broke'`,
    );
    // The JOIN is evaluated on its own schedule: when it runs between the branch failing and
    // the workflow failing, it fails too (and is named among the failed tasks) instead of being
    // canceled with the rest. Either way the branch's failure is what failed the workflow.
    const joinStatus = wf.tasks.find((task) => task.referenceTaskName === "join")?.status;
    assert.ok(joinStatus === "CANCELED" || joinStatus === "FAILED", `join is ${joinStatus}`);
    assert.deepEqual(
      [...(wf.failedReferenceTaskNames as string[] ?? [])].sort(),
      joinStatus === "FAILED" ? ["a", "join"] : ["a"],
    );
    assert.deepEqual(wf.tasks.map((task) => [task.referenceTaskName, task.status]), [
      ["fork", "COMPLETED"],
      ["a", "FAILED"],
      ["b", "CANCELED"],
      ["join", joinStatus],
    ]);
  });

  await t.step("dynamic fork: N tasks with inputs by reference name, one JOIN", async () => {
    const { taskType, workflowName } = await forkSetup("dynfork", (type) => [
      ...dynamicForkAndJoin("dyn", "dynjoin"),
      simple(type, "after", { j: "${dynjoin.output}" }),
    ]);
    const n = 5;
    const refs = Array.from({ length: n }, (_, i) => `part_${i}`);
    const inputs = Object.fromEntries(refs.map((ref, i) => [ref, { prefix: `data/part=${i}/` }]));
    const workflowId = await client.startWorkflow(workflowName, {
      tasks: refs.map((ref, i) => ({
        name: taskType,
        taskReferenceName: ref,
        type: "SIMPLE",
        inputParameters: { i, prefix: "from the def" },
      })),
      inputs,
    });
    const started = await client.getWorkflow(workflowId);
    assert.deepEqual(started.tasks.map(brief), [
      { seq: 1, taskType: "FORK", ref: "dyn", status: "COMPLETED" },
      ...refs.map((ref, i) => ({ seq: i + 2, taskType, ref, status: "SCHEDULED" })),
      { seq: n + 2, taskType: "JOIN", ref: "dynjoin", status: "IN_PROGRESS" },
    ]);
    assert.deepEqual(started.tasks[0]?.inputData.forkedTasks, refs);
    assert.deepEqual(started.tasks[n + 1]?.inputData, { joinOn: refs });

    const forked = await pollN(taskType, n);
    for (const [i, ref] of refs.entries()) {
      const task = forked.get(ref)!;
      // The map entry of the task's reference name is merged over its own inputParameters.
      assert.deepEqual(task.inputData, { i, prefix: `data/part=${i}/` });
      // An empty output is left out of the JOIN's output.
      await complete(task, i === 0 ? {} : { n: i });
    }
    const after = await pollOne(taskType);
    assert.equal(after.referenceTaskName, "after");
    const joined = Object.fromEntries(refs.slice(1).map((ref, i) => [ref, { n: i + 1 }]));
    assert.deepEqual(after.inputData, { j: joined });
    await complete(after, { done: true });
    const wf = await waitWorkflow(workflowId, "COMPLETED");
    assert.deepEqual(wf.tasks[n + 1]?.outputData, joined);
    assert.deepEqual(wf.output, { done: true });
  });

  await t.step("fork defs: no forkTasks is a 400; no JOIN after a fork fails the run", async () => {
    const type = unique("forkdef");
    await client.registerTaskDefs([{ name: type, ownerEmail: "c@example.com" }]);
    const empty = await fetch(`${api}/metadata/workflow`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify([{
        name: `${type}_empty`,
        version: 1,
        tasks: [
          { name: "f", taskReferenceName: "f", type: "FORK_JOIN", forkTasks: [] },
          { name: "j", taskReferenceName: "j", type: "JOIN", joinOn: [] },
        ],
      }]),
    });
    assert.equal(empty.status, 400);
    assert.deepEqual((await empty.json()).validationErrors, [{
      path: "updateWorkflowDef.arg0[0].tasks[0]",
      message: "forkTasks should have atleast one task for taskType: FORK_JOIN taskName: f",
    }]);
    await client.upsertWorkflowDefs([{
      name: `${type}_nojoin`,
      version: 1,
      tasks: [{
        name: "f",
        taskReferenceName: "f",
        type: "FORK_JOIN",
        forkTasks: [[simple(type, "a")], [simple(type, "b")]],
      }],
    }]);
    const workflowId = await client.startWorkflow(`${type}_nojoin`, {});
    const wf = await waitWorkflow(workflowId, "FAILED");
    assert.equal(
      wf.reasonForIncompletion,
      "Fork task definition is not followed by a join task.  Check the blueprint",
    );
    assert.deepEqual(wf.tasks, []);
  });

  await t.step("unknown ids are 404s", async () => {
    const { taskType, workflowId } = await setup("notfound");
    await pollOne(taskType);
    await assert.rejects(client.getTask(crypto.randomUUID()), ConductorNotFoundError);
    // On the wire an unknown task is an empty 204 (not a 404), and a log line for it a 200.
    const unknownTask = await fetch(`${api}/tasks/${crypto.randomUUID()}`);
    assert.equal(unknownTask.status, 204);
    assert.equal(await unknownTask.text(), "");
    const unknownLog = await fetch(`${api}/tasks/${crypto.randomUUID()}/log`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "a line",
    });
    assert.equal(unknownLog.status, 200);
    await unknownLog.body?.cancel();
    await assert.rejects(client.getWorkflow(crypto.randomUUID()), ConductorNotFoundError);
    // Conductor's error body: the status, the message, the answering host, not retryable.
    const missingId = crypto.randomUUID();
    const missing = await fetch(`${api}/workflow/${missingId}`);
    assert.equal(missing.status, 404);
    const missingBody = await missing.json();
    assert.deepEqual(Object.keys(missingBody), ["status", "message", "instance", "retryable"]);
    assert.deepEqual({ ...missingBody, instance: typeof missingBody.instance }, {
      status: 404,
      message: `No such workflow found by id: ${missingId}`,
      instance: "string",
      retryable: false,
    });
    await assert.rejects(
      client.updateTask({
        workflowInstanceId: crypto.randomUUID(),
        taskId: crypto.randomUUID(),
        status: "COMPLETED",
      }),
      ConductorNotFoundError,
    );
    await assert.rejects(
      client.updateTask({
        workflowInstanceId: workflowId,
        taskId: crypto.randomUUID(),
        status: "COMPLETED",
      }),
      ConductorNotFoundError,
    );
    await assert.rejects(client.startWorkflow(unique("nowf"), {}), ConductorNotFoundError);
  });

  await t.step(
    "pause, resume, retry and restart: what each allows in which status, and what it schedules",
    async () => {
      const { taskType, workflowId } = await setup("manage", {}, ["a", "b"]);
      const manage = async (method: "PUT" | "POST", action: string) => {
        const response = await fetch(`${api}/workflow/${workflowId}/${action}`, { method });
        const text = await response.text();
        return { status: response.status, body: text === "" ? undefined : JSON.parse(text) };
      };
      const notPaused = await manage("PUT", "resume");
      assert.equal(notPaused.status, 500);
      assert.equal(
        notPaused.body.message,
        `The workflow ${workflowId} is not PAUSED so cannot resume. Current status is RUNNING`,
      );
      assert.deepEqual(await manage("PUT", "pause"), { status: 200, body: undefined });
      assert.deepEqual(await manage("PUT", "pause"), { status: 200, body: undefined });
      assert.equal((await client.getWorkflow(workflowId)).status, "PAUSED");
      // Paused: the scheduled task is still handed out and its result taken; nothing follows it.
      const a = await pollOne(taskType);
      await client.updateTask({
        workflowInstanceId: workflowId,
        taskId: a.taskId,
        status: "COMPLETED",
      });
      const paused = await client.getWorkflow(workflowId);
      assert.equal(paused.status, "PAUSED");
      assert.deepEqual(paused.tasks.map((task) => [task.referenceTaskName, task.status]), [
        ["a", "COMPLETED"],
      ]);
      assert.deepEqual(await manage("PUT", "resume"), { status: 200, body: undefined });
      const b = await pollOne(taskType);
      assert.equal(b.referenceTaskName, "b");
      const stillRunning = await manage("POST", "retry");
      assert.equal(stillRunning.status, 404);
      assert.equal(stillRunning.body.message, "Workflow is still running.  status=RUNNING");
      const restartRunning = await manage("POST", "restart");
      assert.equal(restartRunning.status, 409);
      assert.equal(
        restartRunning.body.message,
        `Workflow: ${taskType}_wf.1/${workflowId}.RUNNING is not in terminal state, unable to restart.`,
      );
      await client.updateTask({
        workflowInstanceId: workflowId,
        taskId: b.taskId,
        status: "FAILED",
        reasonForIncompletion: "b broke",
      });
      await waitWorkflow(workflowId, "FAILED");
      const ended = await manage("PUT", "pause");
      assert.equal(ended.status, 409);
      assert.equal(
        ended.body.message,
        `Workflow ${taskType}_wf.1/${workflowId} has ended, status cannot be updated.`,
      );
      // Retry: the failed task again (retryCount + 1), the workflow RUNNING without a reason.
      assert.deepEqual(await manage("POST", "retry"), { status: 204, body: undefined });
      const retried = await pollOne(taskType);
      assert.equal(retried.referenceTaskName, "b");
      assert.equal(retried.retryCount, 1);
      assert.equal(retried.retriedTaskId, b.taskId);
      const running = await client.getWorkflow(workflowId);
      assert.equal(running.status, "RUNNING");
      assert.equal(running.reasonForIncompletion ?? null, null);
      assert.deepEqual(
        running.tasks.map((task) => [task.referenceTaskName, task.status, task.retried]),
        [["a", "COMPLETED", false], ["b", "FAILED", true], ["b", "IN_PROGRESS", false]],
      );
      await client.updateTask({
        workflowInstanceId: workflowId,
        taskId: retried.taskId,
        status: "COMPLETED",
      });
      await waitWorkflow(workflowId, "COMPLETED");
      const nothing = await manage("POST", "retry");
      assert.equal(nothing.status, 409);
      assert.match(nothing.body.message, /^There are no retryable tasks!/);
      // Restart: from the first task again under the same id, the old tasks gone.
      assert.deepEqual(await manage("POST", "restart"), { status: 204, body: undefined });
      const again = await pollOne(taskType);
      assert.equal(again.referenceTaskName, "a");
      assert.equal(again.retryCount, 0);
      assert.equal(again.workflowInstanceId, workflowId);
      const restarted = await client.getWorkflow(workflowId);
      assert.equal(restarted.status, "RUNNING");
      assert.deepEqual(restarted.tasks.map((task) => task.taskId), [again.taskId]);
      const stop = await fetch(`${api}/workflow/${workflowId}?reason=done`, { method: "DELETE" });
      await stop.body?.cancel();
    },
  );

  await t.step(
    "remove: a running workflow is removed but archiving it is a 400; a missing TaskDef's delete is a 500",
    async () => {
      const remove = async (workflowId: string, query = "") => {
        const response = await fetch(`${api}/workflow/${workflowId}/remove${query}`, {
          method: "DELETE",
        });
        const text = await response.text();
        return { status: response.status, body: text === "" ? undefined : JSON.parse(text) };
      };
      const { taskType, workflowId } = await setup("remove");
      const archived = await remove(workflowId);
      assert.equal(archived.status, 400);
      assert.equal(
        archived.body.message,
        `Cannot archive workflow: ${workflowId} with status: RUNNING`,
      );
      await assert.rejects(client.getWorkflow(workflowId), ConductorNotFoundError);
      const second = await client.startWorkflow(`${taskType}_wf`, {});
      assert.deepEqual(await remove(second, "?archiveWorkflow=false"), {
        status: 200,
        body: undefined,
      });
      await assert.rejects(client.getWorkflow(second), ConductorNotFoundError);
      const third = await client.startWorkflow(`${taskType}_wf`, {});
      const terminated = await fetch(`${api}/workflow/${third}?reason=done`, { method: "DELETE" });
      assert.equal(terminated.status, 200);
      await terminated.body?.cancel();
      assert.deepEqual(await remove(third), { status: 200, body: undefined });
      const missing = await fetch(`${api}/metadata/taskdefs/${unique("nodef")}`, {
        method: "DELETE",
      });
      assert.equal(missing.status, 500);
      assert.equal((await missing.json()).message, "No such task definition");
    },
  );

  await t.step(
    "empty ids are 400; malformed JSON and bad enums are 500 {status, message}",
    async () => {
      const post = async (body: string) => {
        const response = await fetch(`${api}/tasks`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });
        return { status: response.status, body: await response.json() };
      };
      const empty = await post(
        JSON.stringify({ workflowInstanceId: "", taskId: "", status: "COMPLETED" }),
      );
      assert.equal(empty.status, 400);
      assert.equal(empty.body.status, 400);
      assert.equal(typeof empty.body.message, "string");
      const malformed = await post("{not json");
      assert.equal(malformed.status, 500);
      assert.equal(malformed.body.status, 500);
      assert.match(malformed.body.message, /JSON parse error/);
      const badEnum = await post(
        JSON.stringify({ workflowInstanceId: "a", taskId: "b", status: "DONE" }),
      );
      assert.equal(badEnum.status, 500);
      assert.match(badEnum.body.message, /DONE/);
    },
  );

  await t.step("a batch poll waits for its count until the timeout", async () => {
    const { taskType } = await setup("fill");
    // The start queues the first task at once; a poll for two gets it and waits for more.
    const started = Date.now();
    const tasks = await client.pollBatch(taskType, { count: 2, timeoutMs: 700, workerId: "w" });
    assert.equal(tasks.length, 1);
    assert.ok(Date.now() - started >= 650, "the poll held on for a second task");
  });

  await t.step("TaskDef constraints are checked: 400 with the reason", async () => {
    const error = await client.registerTaskDefs([{
      name: unique("badtimeouts"),
      timeoutSeconds: 60,
      responseTimeoutSeconds: 120,
    }]).then(() => undefined, (e) => e);
    assert.ok(error instanceof ConductorError);
    assert.equal(error.status, 400);
    const zero = await client.registerTaskDefs([{
      name: unique("zero"),
      responseTimeoutSeconds: 0,
    }])
      .then(() => undefined, (e) => e);
    assert.equal(zero?.status, 400);
    // The violations, as Conductor's bean validation lists them: where, why, the value.
    const metadata = async (method: "POST" | "PUT", body: unknown) => {
      const response = await fetch(`${api}/metadata/taskdefs`, {
        method,
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: text === "" ? undefined : JSON.parse(text) };
    };
    const name = unique("constraints");
    const listed = await metadata("POST", [{ name: unique("fine") }, {
      name,
      retryCount: -1,
      pollTimeoutSeconds: -2,
      responseTimeoutSeconds: 0,
      backoffScaleFactor: 0,
    }]);
    assert.equal(listed.status, 400);
    assert.equal(listed.body.message, "Validation failed, check below errors for detail.");
    const byPath = (errors: { path: string }[]) =>
      [...errors].sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
    assert.deepEqual(byPath(listed.body.validationErrors), [
      {
        path: "registerTaskDef.arg0[1].backoffScaleFactor",
        message: "Backoff scale factor. Applicable for LINEAR_BACKOFF",
        invalidValue: "0",
      },
      {
        path: "registerTaskDef.arg0[1].pollTimeoutSeconds",
        message: "TaskDef pollTimeoutSeconds: 0 must be >= 0",
        invalidValue: "-2",
      },
      {
        path: "registerTaskDef.arg0[1].responseTimeoutSeconds",
        message: "TaskDef responseTimeoutSeconds: 0 should be minimum 1 second",
        invalidValue: "0",
      },
      {
        path: "registerTaskDef.arg0[1].retryCount",
        message: "TaskDef retryCount: 0 must be >= 0",
        invalidValue: "-1",
      },
    ]);
    const unnamed = await metadata("PUT", { name: "", retryCount: 1 });
    assert.deepEqual(unnamed.body.validationErrors, [{
      path: "updateTaskDef.arg0.name",
      message: "TaskDef name cannot be null or empty",
      invalidValue: "",
    }]);
    const crossed = await metadata("POST", [{
      name,
      timeoutSeconds: 5,
      responseTimeoutSeconds: 10,
    }]);
    assert.deepEqual(crossed.body.validationErrors, [{
      path: "registerTaskDef.arg0[0]",
      message: `TaskDef: ${name} responseTimeoutSeconds: 10 must be less than timeoutSeconds: 5`,
    }]);
    // Not constrained: a negative retry delay or total timeout registers.
    const loose = await metadata("POST", [{
      name,
      retryDelaySeconds: -2,
      totalTimeoutSeconds: -2,
    }]);
    assert.equal(loose.status, 200);
  });

  await t.step("a TaskResult without status and a start without body are 500s", async () => {
    const { taskType, workflowId, workflowName } = await setup("nostatus");
    const task = await pollOne(taskType);
    const noStatus = await fetch(`${api}/tasks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ workflowInstanceId: workflowId, taskId: task.taskId }),
    });
    assert.equal(noStatus.status, 500);
    assert.equal((await noStatus.json()).status, 500);
    assert.equal((await client.getTask(task.taskId)).status, "IN_PROGRESS");
    const noBody = await fetch(`${api}/workflow/${workflowName}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
    });
    assert.equal(noBody.status, 500);
    await noBody.body?.cancel();
  });

  await t.step("task logs can be attached", async () => {
    const { taskType } = await setup("logs");
    const task = await pollOne(taskType);
    await client.addTaskLog(task.taskId, "hello from the contract test");
    if (!target.real) {
      // Conductor OSS with indexing off keeps no logs; the demo does.
      const response = await fetch(`${api}/tasks/${task.taskId}/log`);
      const logs = await response.json();
      assert.equal(logs[0]?.log, "hello from the contract test");
    }
  });

  await t.step("response timeout: a silent IN_PROGRESS task is TIMED_OUT and retried", async () => {
    const { taskType, workflowId } = await setup("rto", {
      responseTimeoutSeconds: 1,
      retryCount: 1,
      retryDelaySeconds: 0,
    });
    const first = await pollOne(taskType);
    const retried = await pollOne(taskType);
    assert.equal(retried.retriedTaskId, first.taskId);
    assert.equal(retried.retryCount, 1);
    const old = await client.getTask(first.taskId);
    assert.equal(old.status, "TIMED_OUT");
    // A late result of the timed-out attempt changes nothing.
    await client.updateTask({
      workflowInstanceId: workflowId,
      taskId: first.taskId,
      status: "COMPLETED",
      outputData: { late: true },
    });
    assert.equal((await client.getTask(first.taskId)).status, "TIMED_OUT");
    assert.equal((await client.getWorkflow(workflowId)).status, "RUNNING");
  });
}

Deno.test("Conductor contract: demo server", async (t) => {
  const server = await startConductorServer({ sweepIntervalMs: 50 });
  try {
    await contractSuite(t, { name: "demo", url: server.url, slowMs: 10_000, real: false });
  } finally {
    await server.close();
  }
});

const real = realConductor();
Deno.test({
  name: "Conductor contract: real Conductor OSS (PERAGO_TEST_CONDUCTOR_URL)",
  ignore: skipNote("Conductor contract against a real Conductor OSS", real),
  fn: async (t) => {
    if ("skip" in real) return;
    await contractSuite(t, { name: "real", url: real.url, slowMs: 180_000, real: true });
  },
});
