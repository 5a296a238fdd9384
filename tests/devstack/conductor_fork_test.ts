/**
 * FORK_JOIN, FORK_JOIN_DYNAMIC and JOIN on the demo Conductor, with the shapes Conductor OSS
 * 3.21.14 shows for them: a FORK task (COMPLETED at once) then the first task of each branch
 * then the JOIN (IN_PROGRESS, input `joinOn`), the JOIN's output a map of reference name to
 * output (empty outputs left out), a failed branch failing the workflow, a dynamic fork's tasks
 * with their input from the fork's map, and the real server's answers to bad fork defs. The
 * same flows run against the real server in tests/contract/conductor_contract_test.ts.
 */
import assert from "node:assert/strict";
import {
  type ConductorServerHandle,
  startConductorServer,
} from "../../src/devstack/conductor/server.ts";
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

type Json = Record<string, unknown>;

class Api {
  #n = 0;
  constructor(readonly server: ConductorServerHandle) {}
  async call(method: string, path: string, body?: unknown) {
    const response = await fetch(`${this.server.url}/api${path}`, {
      method,
      headers: { "content-type": "application/json" },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: response.status, text, json: json as Json };
  }
  /** Registers a task type (no retries unless given) and returns its name. */
  async taskType(retryCount = 0): Promise<string> {
    const name = `fork_t_${++this.#n}`;
    const answer = await this.call("POST", "/metadata/taskdefs", [{
      name,
      ownerEmail: "t@example.com",
      retryCount,
      retryDelaySeconds: 0,
      responseTimeoutSeconds: 300,
    }]);
    assert.equal(answer.status, 200, answer.text);
    return name;
  }
  /** Registers a workflow def (POST) and answers the response. */
  register(tasks: Json[], extra: Json = {}) {
    return this.call("POST", "/metadata/workflow", {
      name: `fork_wf_${++this.#n}`,
      version: 1,
      tasks,
      ...extra,
    }).then((answer) => ({ ...answer, name: `fork_wf_${this.#n}` }));
  }
  async start(name: string, input: Json = {}): Promise<string> {
    const answer = await this.call("POST", `/workflow/${name}`, input);
    assert.equal(answer.status, 200, answer.text);
    return answer.text;
  }
  async workflow(id: string): Promise<Json & { tasks: Json[] }> {
    return (await this.call("GET", `/workflow/${id}?includeTasks=true`)).json as
      & Json
      & { tasks: Json[] };
  }
  async poll(type: string, count = 10): Promise<Json[]> {
    const answer = await this.call(
      "GET",
      `/tasks/poll/batch/${type}?count=${count}&timeout=0&workerid=w`,
    );
    assert.equal(answer.status, 200, answer.text);
    return answer.json as unknown as Json[];
  }
  async complete(task: Json, outputData: Json = {}, status = "COMPLETED", reason?: string) {
    const answer = await this.call("POST", "/tasks", {
      workflowInstanceId: task.workflowInstanceId,
      taskId: task.taskId,
      status,
      outputData,
      ...(reason ? { reasonForIncompletion: reason } : {}),
    });
    assert.equal(answer.status, 200, answer.text);
  }
}

async function withApi(fn: (api: Api) => Promise<void>): Promise<void> {
  const server = await startConductorServer({ sweepIntervalMs: 60_000 });
  try {
    await fn(new Api(server));
  } finally {
    await server.close();
  }
}

Deno.test("demo conductor: a static fork runs its branches side by side and joins", async () => {
  await withApi(async (api) => {
    const type = await api.taskType();
    const def = await api.register(staticForkTasks(type), {
      outputParameters: STATIC_FORK_OUTPUT,
    });
    assert.equal(def.status, 200, def.text);
    const id = await api.start(def.name, { x: "X" });

    // As Conductor schedules it: FORK (done at once), each branch's first task, the JOIN.
    let wf = await api.workflow(id);
    assert.deepEqual(wf.tasks.map(brief), staticForkStarted(type));
    const [fork, , , join] = wf.tasks;
    assert.equal(fork?.taskDefName, "FORK");
    assert.deepEqual(fork?.inputData, { fx: "X" });
    assert.deepEqual(fork?.outputData, {});
    assert.equal(fork?.responseTimeoutSeconds, 0);
    assert.equal((fork?.workflowTask as Json).type, "FORK_JOIN");
    assert.equal(join?.taskDefName, "JOIN");
    assert.deepEqual(join?.inputData, { joinOn: ["a2", "b1"] });
    assert.deepEqual((join?.workflowTask as Json).joinOn, ["a2", "b1"]);

    // Both branch heads are pollable at once; FORK and JOIN never are.
    const heads = await api.poll(type);
    assert.deepEqual(heads.map((t) => t.referenceTaskName).sort(), ["a1", "b1"]);
    assert.deepEqual(await api.poll("FORK"), []);
    assert.deepEqual(await api.poll("JOIN"), []);
    const byRef = new Map(heads.map((t) => [t.referenceTaskName as string, t]));
    assert.deepEqual(byRef.get("a1")?.inputData, { x: "X" });
    await api.complete(byRef.get("a1")!, { v: "out-a1" });
    await api.complete(byRef.get("b1")!, { v: "out-b1" });

    // The branch goes on in sequence; the JOIN waits for a2.
    const [a2] = await api.poll(type);
    assert.equal(a2?.referenceTaskName, "a2");
    assert.equal(a2?.seq, 5);
    assert.deepEqual(a2?.inputData, { prev: "out-a1" });
    wf = await api.workflow(id);
    assert.equal(wf.tasks.find((t) => t.referenceTaskName === "join")?.status, "IN_PROGRESS");
    await api.complete(a2!, { v: "out-a2" });

    const [after] = await api.poll(type);
    assert.equal(after?.referenceTaskName, "after");
    assert.equal(after?.seq, 6);
    const joined = STATIC_FORK_JOINED;
    assert.deepEqual(after?.inputData, STATIC_FORK_AFTER_INPUT);
    wf = await api.workflow(id);
    const doneJoin = wf.tasks.find((t) => t.referenceTaskName === "join");
    assert.equal(doneJoin?.status, "COMPLETED");
    assert.deepEqual(doneJoin?.outputData, joined);
    await api.complete(after!, { v: "out-after" });
    wf = await api.workflow(id);
    assert.equal(wf.status, "COMPLETED");
    assert.deepEqual(wf.output, { j: joined });
  });
});

Deno.test("demo conductor: a branch task failing for good fails the workflow", async () => {
  await withApi(async (api) => {
    const type = await api.taskType(1);
    const def = await api.register(
      forkAndJoin([[simple(type, "a1"), simple(type, "a2")], [simple(type, "b1")]], ["a2", "b1"]),
    );
    const id = await api.start(def.name);
    const heads = new Map((await api.poll(type)).map((t) => [t.referenceTaskName as string, t]));
    await api.complete(heads.get("b1")!, {});
    await api.complete(heads.get("a1")!, {}, "FAILED", "boom a1 r0");
    // The retry keeps the reference name, takes the next seq and leaves the JOIN waiting.
    const [retry] = await api.poll(type);
    assert.equal(retry?.referenceTaskName, "a1");
    assert.equal(retry?.retryCount, 1);
    assert.equal(retry?.retriedTaskId, heads.get("a1")?.taskId);
    assert.equal(retry?.seq, 5);
    assert.equal((await api.workflow(id)).status, "RUNNING");
    await api.complete(retry!, {}, "FAILED", "boom a1 r1");
    const wf = await api.workflow(id);
    assert.equal(wf.status, "FAILED");
    assert.equal(
      wf.reasonForIncompletion,
      `Task ${retry?.taskId} failed with status: FAILED and reason: 'boom a1 r1'`,
    );
    assert.deepEqual(wf.failedReferenceTaskNames, ["a1"]);
    assert.deepEqual(wf.tasks.map(brief), [
      { seq: 1, taskType: "FORK", ref: "fork", status: "COMPLETED" },
      { seq: 2, taskType: type, ref: "a1", status: "FAILED" },
      { seq: 3, taskType: type, ref: "b1", status: "COMPLETED" },
      { seq: 4, taskType: "JOIN", ref: "join", status: "CANCELED" },
      { seq: 5, taskType: type, ref: "a1", status: "FAILED" },
    ]);
    assert.deepEqual(await api.poll(type), [], "a2 is never scheduled");
  });
});

Deno.test("demo conductor: a branch task failing terminally cancels the other branch", async () => {
  await withApi(async (api) => {
    const type = await api.taskType(3);
    const def = await api.register(
      forkAndJoin([[simple(type, "a")], [simple(type, "b")]], ["a", "b"]),
    );
    const id = await api.start(def.name);
    const heads = new Map((await api.poll(type)).map((t) => [t.referenceTaskName as string, t]));
    await api.complete(heads.get("a")!, {}, "FAILED_WITH_TERMINAL_ERROR", "bad input");
    const wf = await api.workflow(id);
    assert.equal(wf.status, "FAILED");
    assert.deepEqual(wf.tasks.map((t) => [t.referenceTaskName, t.status]), [
      ["fork", "COMPLETED"],
      ["a", "FAILED_WITH_TERMINAL_ERROR"],
      ["b", "CANCELED"],
      ["join", "CANCELED"],
    ]);
    // The canceled branch's late result is a no-op.
    await api.complete(heads.get("b")!, { late: true });
    assert.equal((await api.workflow(id)).tasks[2]?.status, "CANCELED");
  });
});

Deno.test("demo conductor: a dynamic fork runs N tasks with inputs by reference name", async () => {
  await withApi(async (api) => {
    const type = await api.taskType();
    const def = await api.register([
      ...dynamicForkAndJoin("dyn", "dynjoin", undefined, { other: "o" }),
      simple(type, "after", { j: "${dynjoin.output}", f: "${dyn.output}" }),
    ]);
    assert.equal(def.status, 200, def.text);
    const n = 7;
    const refs = Array.from({ length: n }, (_, i) => `part_${String(i).padStart(2, "0")}`);
    const tasks = refs.map((ref, i) => ({
      name: type,
      taskReferenceName: ref,
      ...(i === 0 ? {} : { type: "SIMPLE" }), // type defaults to SIMPLE
      inputParameters: { fromDef: i, shared: "def" },
    }));
    const inputs: Json = { extra_ref: { ignored: true } };
    refs.forEach((ref, i) => inputs[ref] = { prefix: `data/part=${String(i).padStart(2, "0")}/` });
    (inputs[refs[0]!] as Json).shared = "map";
    const id = await api.start(def.name, { tasks, inputs });

    let wf = await api.workflow(id);
    assert.deepEqual(wf.tasks.map(brief), [
      { seq: 1, taskType: "FORK", ref: "dyn", status: "COMPLETED" },
      ...refs.map((ref, i) => ({ seq: i + 2, taskType: type, ref, status: "SCHEDULED" })),
      { seq: n + 2, taskType: "JOIN", ref: "dynjoin", status: "IN_PROGRESS" },
    ]);
    const fork = wf.tasks[0]!;
    const forkInput = fork.inputData as Json;
    assert.deepEqual(forkInput.forkedTasks, refs);
    assert.equal((forkInput.forkedTaskDefs as Json[]).length, n);
    assert.equal((forkInput.forkedTaskDefs as Json[])[0]?.type, "SIMPLE");
    assert.equal(forkInput.other, "o");
    assert.deepEqual(forkInput.inputs, inputs);
    const join = wf.tasks[n + 1]!;
    // The def's JOIN has no joinOn; the JOIN task waits on every forked reference.
    assert.deepEqual((join.workflowTask as Json).joinOn, []);
    assert.deepEqual(join.inputData, { joinOn: refs });

    const polled = await api.poll(type, n + 5);
    assert.equal(polled.length, n);
    for (const task of polled) {
      const i = refs.indexOf(task.referenceTaskName as string);
      assert.ok(i >= 0);
      assert.deepEqual(task.inputData, {
        fromDef: i,
        shared: i === 0 ? "map" : "def",
        prefix: `data/part=${String(i).padStart(2, "0")}/`,
      });
      // The last one completes with an empty output: the JOIN leaves it out.
      await api.complete(task, i === n - 1 ? {} : { v: `out-${i}` });
    }
    const expected: Json = {};
    refs.slice(0, -1).forEach((ref, i) => expected[ref] = { v: `out-${i}` });
    wf = await api.workflow(id);
    assert.equal(wf.tasks[n + 1]?.status, "COMPLETED");
    assert.deepEqual(wf.tasks[n + 1]?.outputData, expected);
    const [after] = await api.poll(type);
    assert.deepEqual(after?.inputData, { j: expected, f: {} });
    await api.complete(after!, { done: 1 });
    wf = await api.workflow(id);
    assert.equal(wf.status, "COMPLETED");
    assert.deepEqual(wf.output, { done: 1 });
  });
});

Deno.test("demo conductor: a dynamic fork's forked task is retried under its reference name", async () => {
  await withApi(async (api) => {
    const type = await api.taskType(1);
    const def = await api.register(dynamicForkAndJoin("dyn", "j", { tasks: "t", inputs: "i" }), {
      outputParameters: { joined: "${j.output}" },
    });
    const id = await api.start(def.name, {
      t: [{ name: type, taskReferenceName: "p0" }, { name: type, taskReferenceName: "p1" }],
      i: { p0: { k: 0 }, p1: { k: 1 } },
    });
    const first = new Map((await api.poll(type)).map((t) => [t.referenceTaskName as string, t]));
    await api.complete(first.get("p0")!, {}, "FAILED", "flaky");
    await api.complete(first.get("p1")!, { k: 1 });
    const [retry] = await api.poll(type);
    assert.equal(retry?.referenceTaskName, "p0");
    assert.equal(retry?.retryCount, 1);
    assert.deepEqual(retry?.inputData, { k: 0 });
    await api.complete(retry!, { k: 0 });
    const wf = await api.workflow(id);
    assert.equal(wf.status, "COMPLETED");
    assert.deepEqual(wf.output, { joined: { p0: { k: 0 }, p1: { k: 1 } } });
  });
});

Deno.test("demo conductor: fork defs are checked as Conductor OSS 3.21 checks them", async () => {
  await withApi(async (api) => {
    const type = await api.taskType();
    const errors = (answer: { json: Json }) =>
      ((answer.json.validationErrors as Json[] | undefined) ?? []).map((e) =>
        `${e.path}: ${e.message}`
      ).sort();

    const empty = await api.register([
      { name: "f", taskReferenceName: "f", type: "FORK_JOIN", forkTasks: [] },
      { name: "j", taskReferenceName: "j", type: "JOIN", joinOn: [] },
    ]);
    assert.equal(empty.status, 400);
    assert.deepEqual(errors(empty), [
      "registerWorkflowDef.arg0.tasks[0]: forkTasks should have atleast one task for taskType: FORK_JOIN taskName: f",
    ]);

    const nested = await api.call("PUT", "/metadata/workflow", [{
      name: "nested_bad",
      version: 1,
      tasks: [
        {
          name: "f",
          taskReferenceName: "f",
          type: "FORK_JOIN",
          forkTasks: [[simple(type, "a"), {
            name: "d",
            taskReferenceName: "d",
            type: "FORK_JOIN_DYNAMIC",
          }, { name: "dj", taskReferenceName: "dj", type: "JOIN" }]],
        },
        { name: "j", taskReferenceName: "j", type: "JOIN", joinOn: ["a"] },
      ],
    }]);
    assert.equal(nested.status, 400);
    assert.deepEqual(errors(nested), [
      "updateWorkflowDef.arg0[0].tasks[0].forkTasks[0].<list element>[1]: dynamicForkTasksInputParamName field is required for taskType: FORK_JOIN_DYNAMIC taskName: d",
      "updateWorkflowDef.arg0[0].tasks[0].forkTasks[0].<list element>[1]: dynamicForkTasksParam field is required for taskType: FORK_JOIN_DYNAMIC taskName: d",
    ]);

    const duplicate = await api.register([
      {
        name: "f",
        taskReferenceName: "f",
        type: "FORK_JOIN",
        forkTasks: [[simple(type, "a")], [simple(type, "a")]],
      },
      { name: "j", taskReferenceName: "j", type: "JOIN", joinOn: ["a"] },
      simple(type, "c", {
        ok: "${a.output} ${workflow.input.x}",
        bad: "x ${nope.output.y}",
        list: ["${nope2.output}"],
        deep: { k: "${nope3.input}" },
        sp: "${a. b}",
      }),
    ]);
    assert.equal(duplicate.status, 400);
    const at = "registerWorkflowDef.arg0";
    assert.deepEqual(errors(duplicate), [
      `${at}: key: sp input parameter value: a. b is not valid`,
      `${at}: taskReferenceName: a should be unique across tasks for a given workflowDefinition: ${duplicate.name}`,
      `${at}: taskReferenceName: nope for given task: ${type} input value: bad of input parameter: x \${nope.output.y} is not defined in workflow definition.`,
      `${at}: taskReferenceName: nope2 for given task: ${type} input value: list of input parameter: \${nope2.output} is not defined in workflow definition.`,
      `${at}: taskReferenceName: nope3 for given task: ${type} input value: k of input parameter: \${nope3.input} is not defined in workflow definition.`,
    ]);
  });
});

Deno.test("demo conductor: fork defs that register but fail when they run", async () => {
  await withApi(async (api) => {
    const type = await api.taskType();
    const failsWith = async (tasks: Json[], input: Json, reason: string) => {
      const def = await api.register(tasks);
      assert.equal(def.status, 200, def.text);
      const wf = await api.workflow(await api.start(def.name, input));
      assert.equal(wf.status, "FAILED");
      assert.equal(wf.reasonForIncompletion, reason);
      assert.deepEqual(wf.tasks, [], "nothing of the fork is scheduled");
    };
    const fork = {
      name: "f",
      taskReferenceName: "f",
      type: "FORK_JOIN",
      forkTasks: [[simple(type, "a")], [simple(type, "b")]],
    };
    const notFollowed = "Fork task definition is not followed by a join task.  Check the blueprint";
    await failsWith([fork], {}, notFollowed);
    await failsWith([fork, simple(type, "c")], {}, notFollowed);
    const dyn = {
      name: "d",
      taskReferenceName: "d",
      type: "FORK_JOIN_DYNAMIC",
      inputParameters: { t: "${workflow.input.t}", i: "${workflow.input.i}" },
      dynamicForkTasksParam: "t",
      dynamicForkTasksInputParamName: "i",
    };
    const join = { name: "j", taskReferenceName: "j", type: "JOIN" };
    const p0 = { name: type, taskReferenceName: "p0", type: "SIMPLE" };
    await failsWith(
      [dyn],
      { t: [p0], i: {} },
      "Dynamic join definition is not followed by a join task.  Check the workflow definition.",
    );
    await failsWith(
      [dyn, join],
      { t: [p0], i: [1] },
      "Input to the dynamically forked tasks is not a map -> expecting a map of K,V  but found [1]",
    );
    await failsWith(
      [dyn, join],
      { t: "nope", i: {} },
      "Input 't' is invalid. Cannot deserialize a list of Workflow Tasks from 'nope'",
    );
    await failsWith(
      [dyn, join],
      { t: [{ name: type, type: "SIMPLE" }], i: {} },
      `Input 't' is invalid. Cannot deserialize a list of Workflow Tasks from '[{name=${type}, type=SIMPLE}]'`,
    );

    // A branch with no task: the real server answers the start with this 500.
    const emptyBranch = await api.register([
      {
        name: "f",
        taskReferenceName: "f",
        type: "FORK_JOIN",
        forkTasks: [[simple(type, "a")], []],
      },
      { name: "j", taskReferenceName: "j", type: "JOIN", joinOn: ["a"] },
    ]);
    assert.equal(emptyBranch.status, 200);
    const start = await api.call("POST", `/workflow/${emptyBranch.name}`, {});
    assert.equal(start.status, 500);
    assert.equal(start.json.message, "Index 0 out of bounds for length 0");
    assert.deepEqual(await api.poll(type), [], "the refused start left no task behind");
  });
});

Deno.test("demo conductor: joins with nothing to wait on complete at once", async () => {
  await withApi(async (api) => {
    const type = await api.taskType();
    // A dynamic fork over no task completes the workflow straight away.
    const dyn = await api.register(dynamicForkAndJoin("d", "j", { tasks: "t", inputs: "i" }));
    let wf = await api.workflow(await api.start(dyn.name, { t: [], i: {} }));
    assert.equal(wf.status, "COMPLETED");
    assert.deepEqual(wf.tasks.map(brief), [
      { seq: 1, taskType: "FORK", ref: "d", status: "COMPLETED" },
      { seq: 2, taskType: "JOIN", ref: "j", status: "COMPLETED" },
    ]);
    assert.deepEqual(wf.tasks[1]?.inputData, { joinOn: [] });

    // A static JOIN that waits on nothing completes, but the workflow waits for the branches.
    const loose = await api.register([
      {
        name: "f",
        taskReferenceName: "f",
        type: "FORK_JOIN",
        forkTasks: [[simple(type, "a")], [simple(type, "b")]],
      },
      { name: "j", taskReferenceName: "j", type: "JOIN" },
    ]);
    const id = await api.start(loose.name);
    wf = await api.workflow(id);
    assert.equal(wf.tasks.find((t) => t.referenceTaskName === "j")?.status, "COMPLETED");
    assert.equal(wf.status, "RUNNING");
    for (const task of await api.poll(type)) {
      await api.complete(task, { r: task.referenceTaskName });
    }
    wf = await api.workflow(id);
    assert.equal(wf.status, "COMPLETED");
  });
});
