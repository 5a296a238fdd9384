/**
 * Third-party Conductor SDK workers against the demo Conductor: the Orkes JavaScript SDK 4.x
 * `TaskManager` and conductor-python's `TaskHandler` poll, fail once (retried by the server),
 * complete, and the workflows finish with their mapped output.
 *
 * Opt-in, since the SDKs are not dependencies of perago:
 * - `PERAGO_TEST_JS_SDK_DIR`: a directory with `node_modules/@io-orkes/conductor-javascript`
 *   (`npm install --legacy-peer-deps @io-orkes/conductor-javascript@4`), and `node` on PATH;
 * - `PERAGO_TEST_PY_SDK_PYTHON`: a Python interpreter with `conductor-python` installed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startConductorServer } from "../../src/devstack/conductor/server.ts";
import { waitFor } from "../../src/util/sleep.ts";

const JS_DIR = Deno.env.get("PERAGO_TEST_JS_SDK_DIR");
const PYTHON = Deno.env.get("PERAGO_TEST_PY_SDK_PYTHON");

const JS_WORKER = `
import { pathToFileURL } from "node:url";
const [url, sdkDir, taskType] = process.argv.slice(2);
const sdk = await import(pathToFileURL(sdkDir + "/node_modules/@io-orkes/conductor-javascript/dist/index.mjs").href);
const client = await sdk.createConductorClient({ serverUrl: url });
let calls = 0;
const manager = new sdk.TaskManager(client, [{
  taskDefName: taskType,
  execute: async ({ inputData }) => {
    calls++;
    if (calls === 1) throw new Error("first call fails");
    return { status: "COMPLETED", outputData: { n: inputData.n * 10 } };
  },
}], { options: { pollInterval: 20, concurrency: 2, workerID: "js-sdk" } });
manager.startPolling();
process.on("SIGTERM", async () => { await manager.stopPolling(); process.exit(0); });
`;

const PY_WORKER = `
import sys, time
from conductor.client.configuration.configuration import Configuration
from conductor.client.automator.task_handler import TaskHandler
from conductor.client.worker.worker import Worker
from conductor.client.http.models.task_result import TaskResult
from conductor.client.http.models.task_result_status import TaskResultStatus

calls = {"n": 0}

def execute(task):
    calls["n"] += 1
    result = TaskResult(task_id=task.task_id, workflow_instance_id=task.workflow_instance_id,
                        worker_id="py-sdk")
    if calls["n"] == 1:
        result.status = TaskResultStatus.FAILED
        result.reason_for_incompletion = "first call fails"
        return result
    result.status = TaskResultStatus.COMPLETED
    result.output_data = {"n": task.input_data["n"] * 10}
    return result

def main():
    url, task_type = sys.argv[1], sys.argv[2]
    worker = Worker(task_definition_name=task_type, execute_function=execute, poll_interval=0.02)
    handler = TaskHandler(workers=[worker], configuration=Configuration(server_api_url=url),
                          scan_for_annotated_workers=False)
    handler.start_processes()
    try:
        sys.stdin.read()  # runs until the test closes stdin
    finally:
        handler.stop_processes()

if __name__ == "__main__":
    main()
`;

async function runWorkers(
  command: string,
  args: (url: string, taskType: string) => string[],
  script: { name: string; text: string },
): Promise<void> {
  const server = await startConductorServer({ sweepIntervalMs: 100 });
  const dir = await Deno.makeTempDir({ prefix: "perago-sdk-" });
  let child: Deno.ChildProcess | undefined;
  try {
    await Deno.writeTextFile(join(dir, script.name), script.text);
    const api = `${server.url}/api`;
    const taskType = `sdk_${crypto.randomUUID().slice(0, 8)}`;
    const post = async (path: string, body: unknown, method = "POST") => {
      const response = await fetch(`${api}${path}`, {
        method,
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      assert.equal(response.status, 200, `${path}: ${response.status}`);
      return await response.text();
    };
    await post("/metadata/taskdefs", [{ name: taskType, retryCount: 1, retryDelaySeconds: 0 }]);
    await post("/metadata/workflow", [{
      name: `${taskType}_wf`,
      version: 1,
      tasks: [
        { name: taskType, taskReferenceName: "a", inputParameters: { n: "${workflow.input.n}" } },
        { name: taskType, taskReferenceName: "b", inputParameters: { n: "${a.output.n}" } },
      ],
      outputParameters: { n: "${b.output.n}" },
    }], "PUT");
    const ids: string[] = [];
    for (let n = 1; n <= 3; n++) ids.push(await post(`/workflow/${taskType}_wf`, { n }));
    child = new Deno.Command(command, {
      args: [join(dir, script.name), ...args(api, taskType)],
      stdin: "piped",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const workflows = await waitFor(async () => {
      const all = await Promise.all(
        ids.map((id) => fetch(`${api}/workflow/${id}`).then((r) => r.json())),
      );
      return all.every((w) => w.status === "COMPLETED") ? all : undefined;
    }, { timeoutMs: 30_000, what: "the SDK worker to complete every workflow", intervalMs: 100 });
    assert.deepEqual(workflows.map((w) => w.output.n), [100, 200, 300]);
    const retried = workflows.flatMap((w) => w.tasks).filter((t) => t.retryCount === 1);
    assert.equal(retried.length, 1, "the failed first call was retried by the server once");
  } finally {
    if (child) {
      await child.stdin.close().catch(() => {});
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      await child.status;
    }
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "SDK workers: Orkes JavaScript SDK 4.x TaskManager against the demo Conductor",
  ignore: !JS_DIR,
  fn: () =>
    runWorkers("node", (url, type) => [url, JS_DIR!, type], {
      name: "worker.mjs",
      text: JS_WORKER,
    }),
});

Deno.test({
  name: "SDK workers: conductor-python TaskHandler against the demo Conductor",
  ignore: !PYTHON,
  fn: () => runWorkers(PYTHON!, (url, type) => [url, type], { name: "worker.py", text: PY_WORKER }),
});
