/**
 * Behaviour of the demo Conductor beyond the shared contract: retry delays per retry logic,
 * concurrentExecLimit, long-poll wake-ups, update-v2 and update-by-reference (used by SDK
 * workers), domains, defaults for unregistered task types, persistence, bad requests.
 */
import assert from "node:assert/strict";
import {
  type ConductorServerHandle,
  startConductorServer,
} from "../../src/devstack/conductor/server.ts";
import { waitFor } from "../../src/util/sleep.ts";

type Json = Record<string, unknown>;

class Api {
  constructor(readonly server: ConductorServerHandle) {}
  async call(method: string, path: string, body?: unknown, raw?: string) {
    const response = await fetch(`${this.server.url}/api${path}`, {
      method,
      headers: body !== undefined || raw !== undefined
        ? { "content-type": "application/json" }
        : {},
      ...(raw !== undefined
        ? { body: raw }
        : body !== undefined
        ? { body: JSON.stringify(body) }
        : {}),
    });
    const text = await response.text();
    let json: unknown = undefined;
    try {
      json = text === "" ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: response.status, text, json: json as Json & Json[] };
  }
  async setup(taskDef: Json, refs = ["a"], extra: Json = {}): Promise<string> {
    const name = taskDef.name as string;
    assert.equal((await this.call("POST", "/metadata/taskdefs", [taskDef])).status, 200);
    const wf = {
      name: `${name}_wf`,
      version: 1,
      tasks: refs.map((ref) => ({ name, taskReferenceName: ref, type: "SIMPLE" })),
      ...extra,
    };
    assert.equal((await this.call("PUT", "/metadata/workflow", [wf])).status, 200);
    const started = await this.call("POST", `/workflow/${name}_wf`, {});
    assert.equal(started.status, 200);
    return started.text;
  }
  async poll(type: string, query = "count=1&timeout=0&workerid=w"): Promise<Json[]> {
    const answer = await this.call("GET", `/tasks/poll/batch/${type}?${query}`);
    assert.equal(answer.status, 200, answer.text);
    return answer.json as Json[];
  }
  async update(result: Json) {
    return await this.call("POST", "/tasks", result);
  }
}

async function withServer(
  options: Parameters<typeof startConductorServer>[0],
  fn: (api: Api) => Promise<void>,
): Promise<void> {
  const server = await startConductorServer(options);
  try {
    await fn(new Api(server));
  } finally {
    await server.close();
  }
}

for (
  const [logic, extra, expected] of [
    ["FIXED", {}, [2_000, 2_000]],
    ["LINEAR_BACKOFF", { backoffScaleFactor: 3 }, [6_000, 12_000]],
    ["EXPONENTIAL_BACKOFF", {}, [2_000, 4_000]],
  ] as const
) {
  Deno.test(`demo conductor: ${logic} retry delays ${expected.join(", ")} ms`, async () => {
    let now = 1_000_000;
    await withServer({ clock: () => now, sweepIntervalMs: 60_000 }, async (api) => {
      const wf = await api.setup({
        name: `t_${logic}`,
        retryCount: 2,
        retryLogic: logic,
        retryDelaySeconds: 2,
        ...extra,
      });
      let [task] = await api.poll(`t_${logic}`);
      for (const delay of expected) {
        assert.ok(task);
        await api.update({ workflowInstanceId: wf, taskId: task.taskId, status: "FAILED" });
        now += delay - 1;
        assert.deepEqual(await api.poll(`t_${logic}`), [], "not before the delay");
        now += 1;
        const [retried] = await api.poll(`t_${logic}`);
        assert.ok(retried, "visible after the delay");
        assert.equal(retried.retriedTaskId, task.taskId);
        assert.equal(retried.retryCount, (task.retryCount as number) + 1);
        task = retried;
      }
      await api.update({ workflowInstanceId: wf, taskId: task!.taskId, status: "FAILED" });
      const workflow = await api.call("GET", `/workflow/${wf}`);
      assert.equal(workflow.json.status, "FAILED");
      assert.deepEqual(workflow.json.failedReferenceTaskNames, ["a"]);
    });
  });
}

Deno.test("demo conductor: unregistered task types get retryCount 3, delay 60 s, responseTimeout 3600 s", async () => {
  let now = 5_000_000;
  await withServer({ clock: () => now, sweepIntervalMs: 60_000 }, async (api) => {
    const wf = {
      name: "unreg_wf",
      version: 1,
      tasks: [{ name: "unreg", taskReferenceName: "u", type: "SIMPLE" }],
    };
    assert.equal((await api.call("POST", "/metadata/workflow", wf)).status, 200);
    const id = (await api.call("POST", "/workflow/unreg_wf", {})).text;
    const [task] = await api.poll("unreg");
    assert.equal(task?.responseTimeoutSeconds, 3600);
    await api.update({ workflowInstanceId: id, taskId: task!.taskId, status: "FAILED" });
    now += 59_999;
    assert.deepEqual(await api.poll("unreg"), []);
    now += 1;
    const [retry] = await api.poll("unreg");
    assert.equal(retry?.retryCount, 1);
    // Response timeout after 3600 s of silence.
    now += 3_600_000;
    api.server.engine.sweep();
    assert.equal((await api.call("GET", `/tasks/${retry!.taskId}`)).json.status, "TIMED_OUT");
  });
});

Deno.test("demo conductor: the sweeper times out with responseTimeout + callbackAfterSeconds", async () => {
  let now = 10_000_000;
  await withServer({ clock: () => now, sweepIntervalMs: 60_000 }, async (api) => {
    const wf = await api.setup({ name: "t_cb", retryCount: 0, responseTimeoutSeconds: 10 });
    const [task] = await api.poll("t_cb");
    // Re-queued with a callback, then polled again: the callback counts on top.
    await api.update({
      workflowInstanceId: wf,
      taskId: task!.taskId,
      status: "IN_PROGRESS",
      callbackAfterSeconds: 5,
    });
    assert.deepEqual(await api.poll("t_cb"), []);
    now += 5_000;
    const [again] = await api.poll("t_cb");
    assert.equal(again?.taskId, task!.taskId);
    now += 9_999;
    assert.equal(api.server.engine.sweep(), 0);
    // Heartbeat resets the clock.
    await api.update({
      workflowInstanceId: wf,
      taskId: task!.taskId,
      status: "IN_PROGRESS",
      extendLease: true,
    });
    now += 9_999;
    assert.equal(api.server.engine.sweep(), 0);
    now += 1;
    assert.equal(api.server.engine.sweep(), 1);
    // Retries used up by a timeout: the workflow is TIMED_OUT (not FAILED), as on Conductor.
    const workflow = await api.call("GET", `/workflow/${wf}`);
    assert.equal(workflow.json.status, "TIMED_OUT");
    assert.match(
      workflow.json.reasonForIncompletion as string,
      /failed with status: TIMED_OUT and reason: 'responseTimeout: 10 exceeded for the taskId: .* with Task Definition: t_cb'/,
    );
  });
});

Deno.test("demo conductor: background sweeper runs on its own", async () => {
  await withServer({ sweepIntervalMs: 20 }, async (api) => {
    const wf = await api.setup({ name: "t_bg", retryCount: 0, responseTimeoutSeconds: 1 });
    const [task] = await api.poll("t_bg");
    assert.ok(task);
    await waitFor(
      async () => (await api.call("GET", `/workflow/${wf}`)).json.status === "TIMED_OUT",
      {
        timeoutMs: 5_000,
        what: "the workflow to fail by response timeout",
      },
    );
  });
});

Deno.test("demo conductor: concurrentExecLimit caps IN_PROGRESS tasks per type", async () => {
  await withServer({}, async (api) => {
    await api.call("POST", "/metadata/taskdefs", [{ name: "t_lim", concurrentExecLimit: 2 }]);
    const wf = { name: "lim_wf", version: 1, tasks: [{ name: "t_lim", taskReferenceName: "x" }] };
    await api.call("PUT", "/metadata/workflow", [wf]);
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push((await api.call("POST", "/workflow/lim_wf", {})).text);
    const first = await api.poll("t_lim", "count=4&timeout=0");
    assert.equal(first.length, 2);
    assert.deepEqual(await api.poll("t_lim", "count=4&timeout=0"), []);
    await api.update({
      workflowInstanceId: first[0]!.workflowInstanceId,
      taskId: first[0]!.taskId,
      status: "COMPLETED",
    });
    assert.equal((await api.poll("t_lim", "count=4&timeout=0")).length, 1);
  });
});

Deno.test("demo conductor: a long poll returns as soon as a task is scheduled", async () => {
  await withServer({}, async (api) => {
    await api.call("POST", "/metadata/taskdefs", [{ name: "t_lp" }]);
    await api.call("PUT", "/metadata/workflow", [{
      name: "lp_wf",
      version: 1,
      tasks: [{ name: "t_lp", taskReferenceName: "x" }],
    }]);
    const started = Date.now();
    const polling = api.poll("t_lp", "count=1&timeout=5000&workerid=lp");
    await waitFor(() => api.server.stats.count("pollBatch") === 1, { what: "the poll to arrive" });
    await api.call("POST", "/workflow/lp_wf", {});
    const tasks = await polling;
    assert.equal(tasks.length, 1);
    assert.ok(Date.now() - started < 4_000, "the poll must not wait out its timeout");
  });
});

Deno.test("demo conductor: single poll 200/204, update-v2 chains the next task, update by ref", async () => {
  await withServer({}, async (api) => {
    await api.call("POST", "/metadata/taskdefs", [{ name: "t_v2" }]);
    await api.call("PUT", "/metadata/workflow", [{
      name: "v2_wf",
      version: 1,
      tasks: [{ name: "t_v2", taskReferenceName: "x" }, { name: "t_v2", taskReferenceName: "y" }],
    }]);
    const empty = await api.call("GET", "/tasks/poll/t_v2?workerid=w");
    assert.equal(empty.status, 204);
    const wf1 = (await api.call("POST", "/workflow/v2_wf", {})).text;
    const wf2 = (await api.call("POST", "/workflow", { name: "v2_wf", input: { k: 1 } })).text;
    assert.notEqual(wf1, wf2);
    const one = await api.call("GET", "/tasks/poll/t_v2?workerid=w");
    assert.equal(one.status, 200);
    assert.equal(one.json.workflowInstanceId, wf1);
    // update-v2 completes it and hands out the next task of the same type.
    const next = await api.call("POST", "/tasks/update-v2", {
      workflowInstanceId: wf1,
      taskId: one.json.taskId,
      status: "COMPLETED",
      workerId: "w",
    });
    assert.equal(next.status, 200);
    assert.equal(next.json.status, "IN_PROGRESS");
    assert.equal(next.json.workerId, "w");
    // Update by reference name, text answer = task id.
    const byRef = await api.call(
      "POST",
      `/tasks/${next.json.workflowInstanceId}/${next.json.referenceTaskName}/COMPLETED`,
      { via: "ref" },
    );
    assert.equal(byRef.status, 200);
    assert.equal(byRef.text, next.json.taskId);
    assert.deepEqual((await api.call("GET", `/tasks/${byRef.text}`)).json.outputData, {
      via: "ref",
    });
    const last = await api.call("POST", "/tasks/update-v2", {
      workflowInstanceId: "nope",
      taskId: "nope",
      status: "COMPLETED",
    });
    assert.equal(last.status, 404);
  });
});

Deno.test("demo conductor: taskToDomain routes to the domain queue", async () => {
  await withServer({}, async (api) => {
    await api.call("PUT", "/metadata/workflow", [{
      name: "dom_wf",
      version: 1,
      tasks: [{ name: "t_dom", taskReferenceName: "x" }],
    }]);
    await api.call("POST", "/workflow", { name: "dom_wf", taskToDomain: { t_dom: "blue" } });
    assert.deepEqual(await api.poll("t_dom"), []);
    const [task] = await api.poll("t_dom", "count=1&timeout=0&domain=blue");
    assert.equal(task?.domain, "blue");
  });
});

Deno.test("demo conductor: state survives a restart with dataDir", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "perago-conductor-" });
  try {
    let wf = "";
    let taskId = "";
    await withServer({ dataDir }, async (api) => {
      wf = await api.setup({ name: "t_persist", retryCount: 0 }, ["a", "b"]);
      const [task] = await api.poll("t_persist");
      taskId = task!.taskId as string;
      await api.update({
        workflowInstanceId: wf,
        taskId,
        status: "COMPLETED",
        outputData: { o: 1 },
      });
    });
    await withServer({ dataDir }, async (api) => {
      assert.equal((await api.call("GET", `/tasks/${taskId}`)).json.status, "COMPLETED");
      assert.equal((await api.call("GET", "/metadata/taskdefs/t_persist")).status, 200);
      const [second] = await api.poll("t_persist");
      assert.equal(second?.referenceTaskName, "b");
      await api.update({ workflowInstanceId: wf, taskId: second!.taskId, status: "COMPLETED" });
      assert.equal((await api.call("GET", `/workflow/${wf}`)).json.status, "COMPLETED");
    });
    const files = [...Deno.readDirSync(dataDir)].map((e) => e.name);
    assert.deepEqual(files, ["conductor-state.json"], "no temp files left behind");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("demo conductor: bad requests get {status, message}, never a crash", async () => {
  await withServer({}, async (api) => {
    const cases: [string, string, string | undefined, number][] = [
      ["GET", "/nope", undefined, 404],
      ["POST", "/metadata/taskdefs", "{bad", 500],
      ["POST", "/metadata/taskdefs", JSON.stringify({ name: "not-a-list" }), 500],
      ["POST", "/metadata/taskdefs", JSON.stringify([{ name: "v", retryLogic: "NOPE" }]), 500],
      ["POST", "/metadata/taskdefs", JSON.stringify([{ name: "v", retryCount: -1 }]), 400],
      [
        "POST",
        "/metadata/taskdefs",
        JSON.stringify([{ name: "v", responseTimeoutSeconds: 0 }]),
        400,
      ],
      [
        "POST",
        "/metadata/taskdefs",
        JSON.stringify([{ name: "v", timeoutSeconds: 60, responseTimeoutSeconds: 120 }]),
        400,
      ],
      ["POST", "/metadata/taskdefs", JSON.stringify([{ name: "v", backoffScaleFactor: 0 }]), 400],
      ["POST", "/metadata/taskdefs", JSON.stringify([{ noName: true }]), 400],
      ["PUT", "/metadata/taskdefs", JSON.stringify({ name: "never_registered" }), 404],
      ["POST", "/metadata/workflow", JSON.stringify({ name: "w", tasks: [] }), 400],
      ["POST", "/workflow/none", "{}", 404],
      ["POST", "/workflow/none", "[1,2", 500],
      ["GET", "/tasks/poll/batch/x?count=abc", undefined, 400],
      ["POST", "/tasks", "null", 500],
      [
        "POST",
        "/tasks",
        JSON.stringify({ taskId: "a", workflowInstanceId: "b", outputData: 3 }),
        500,
      ],
      ["GET", "/workflow/none", undefined, 404],
      ["POST", "/tasks", JSON.stringify({ taskId: "a", workflowInstanceId: "b" }), 500],
      ["POST", "/workflow/none", "", 500],
      ["DELETE", "/tasks", undefined, 404],
    ];
    for (const [method, path, raw, status] of cases) {
      const answer = await api.call(method, path, undefined, raw);
      assert.equal(answer.status, status, `${method} ${path} ${raw}: ${answer.text}`);
      assert.equal(typeof answer.json?.message, "string", `${method} ${path} has a message`);
    }
    assert.equal(await fetch(`${api.server.url}/health`).then((r) => r.status), 200);
  });
});

Deno.test("demo conductor: a batch poll waits to fill its count until the timeout, like Conductor", async () => {
  await withServer({}, async (api) => {
    await api.call("POST", "/metadata/taskdefs", [{ name: "t_fill" }]);
    await api.call("PUT", "/metadata/workflow", [{
      name: "fill_wf",
      version: 1,
      tasks: [{ name: "t_fill", taskReferenceName: "x" }],
    }]);
    await api.call("POST", "/workflow/fill_wf", {});
    let started = Date.now();
    const one = await api.poll("t_fill", "count=2&timeout=300&workerid=f");
    assert.equal(one.length, 1);
    assert.ok(Date.now() - started >= 290, "waited for a second task until the timeout");
    started = Date.now();
    const both = api.poll("t_fill", "count=2&timeout=5000&workerid=f");
    await waitFor(() => api.server.stats.count("pollBatch") === 2, { what: "the second poll" });
    await api.call("POST", "/workflow/fill_wf", {});
    await api.call("POST", "/workflow/fill_wf", {});
    assert.equal((await both).length, 2);
    assert.ok(Date.now() - started < 4_000, "returns once the batch is full");
  });
});

Deno.test("demo conductor: extendLease on a re-queued task makes it IN_PROGRESS again", async () => {
  await withServer({}, async (api) => {
    const wf = await api.setup({ name: "t_relay" });
    const [task] = await api.poll("t_relay");
    await api.update({
      workflowInstanceId: wf,
      taskId: task!.taskId,
      status: "IN_PROGRESS",
      callbackAfterSeconds: 60,
    });
    assert.equal((await api.call("GET", `/tasks/${task!.taskId}`)).json.status, "SCHEDULED");
    await api.update({
      workflowInstanceId: wf,
      taskId: task!.taskId,
      status: "IN_PROGRESS",
      extendLease: true,
    });
    assert.equal((await api.call("GET", `/tasks/${task!.taskId}`)).json.status, "IN_PROGRESS");
  });
});

Deno.test("demo conductor: POST workflow def is refused (500) on repeat unless overwrite=true", async () => {
  await withServer({}, async (api) => {
    const def = { name: "ow_wf", tasks: [{ name: "x", taskReferenceName: "a", type: "SIMPLE" }] };
    assert.equal((await api.call("POST", "/metadata/workflow", def)).status, 200);
    const again = await api.call("POST", "/metadata/workflow", def);
    assert.equal(again.status, 500);
    assert.match(again.json.message as string, /ow_wf\.1 already exists/);
    const overwrite = await api.call("POST", "/metadata/workflow?overwrite=true", {
      ...def,
      description: "second",
    });
    assert.equal(overwrite.status, 200);
    const read = await api.call("GET", "/metadata/workflow/ow_wf?version=1");
    assert.equal(read.json.description, "second");
    assert.equal((await api.call("GET", "/metadata/workflow/ow_wf?version=2")).status, 404);
    const id = (await api.call("POST", "/workflow/ow_wf", {})).text;
    assert.deepEqual((await api.call("GET", "/workflow/running/ow_wf")).json, [id]);
    const status = await api.call("GET", `/workflow/${id}/status`);
    assert.equal(status.json.status, "RUNNING");
    assert.equal(status.json.workflowId, id);
    assert.equal((await api.call("DELETE", "/metadata/workflow/ow_wf/1")).status, 200);
    assert.equal((await api.call("GET", "/metadata/workflow/ow_wf")).status, 404);
    assert.equal((await api.call("DELETE", "/metadata/workflow/ow_wf/1")).status, 404);
  });
});

for (const policy of ["RETRY", "TIME_OUT_WF", "ALERT_ONLY"] as const) {
  Deno.test(`demo conductor: task timeoutSeconds with policy ${policy}`, async () => {
    let now = 20_000_000;
    await withServer({ clock: () => now, sweepIntervalMs: 60_000 }, async (api) => {
      const name = `t_to_${policy}`;
      const wf = await api.setup({
        name,
        retryCount: 1,
        retryDelaySeconds: 0,
        timeoutSeconds: 10,
        responseTimeoutSeconds: 5,
        timeoutPolicy: policy,
      });
      const [task] = await api.poll(name);
      for (let i = 0; i < 3; i++) {
        now += 4_000;
        await api.update({
          workflowInstanceId: wf,
          taskId: task!.taskId,
          status: "IN_PROGRESS",
          extendLease: true,
        });
        api.server.engine.sweep();
      }
      const after = await api.call("GET", `/tasks/${task!.taskId}`);
      const workflow = await api.call("GET", `/workflow/${wf}`);
      if (policy === "ALERT_ONLY") {
        assert.equal(after.json.status, "IN_PROGRESS");
        assert.equal(workflow.json.status, "RUNNING");
      } else {
        assert.equal(after.json.status, "TIMED_OUT");
        assert.match(
          after.json.reasonForIncompletion as string,
          /^Task timed out after 12 seconds/,
        );
        if (policy === "RETRY") {
          assert.equal(workflow.json.status, "RUNNING");
          assert.equal((await api.poll(name))[0]?.retriedTaskId, task!.taskId);
        } else {
          assert.equal(workflow.json.status, "TIMED_OUT");
          assert.match(
            workflow.json.reasonForIncompletion as string,
            /policy configured to TIME_OUT_WF/,
          );
        }
      }
    });
  });
}

Deno.test("demo conductor: fillBatchPolls false answers a batch poll with what is there", async () => {
  await withServer({ fillBatchPolls: false }, async (api) => {
    await api.call("POST", "/metadata/taskdefs", [{ name: "t_nofill" }]);
    await api.call("PUT", "/metadata/workflow", [{
      name: "nofill_wf",
      version: 1,
      tasks: [{ name: "t_nofill", taskReferenceName: "x" }],
    }]);
    await api.call("POST", "/workflow/nofill_wf", {});
    const started = Date.now();
    const tasks = await api.poll("t_nofill", "count=5&timeout=3000&workerid=f");
    assert.equal(tasks.length, 1);
    assert.ok(Date.now() - started < 2_000, "no wait for the rest of the batch");
  });
});
