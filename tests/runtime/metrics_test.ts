/**
 * The operators' listener of `perago start --metrics-address`: a known workload on the demo
 * stack, then `/metrics` parsed by the official Prometheus client's parser and the counters
 * and histogram counts checked exactly; the probes through drain and a Conductor outage; a
 * taken port refused with one clear line.
 */
import assert from "node:assert/strict";
import { waitFor } from "../../src/util/sleep.ts";
import { waitForOutput } from "../_perago_process.ts";
import {
  type ParsedFamily,
  parsePrometheusText,
  prometheusParserProblem,
  sampleValue,
} from "../_prometheus_parser.ts";
import { NORMALIZE_EXAMPLE, prepareNormalize } from "./_normalize_example.ts";
import { startStack, startWorker, stopWorker, type Worker } from "./_stack.ts";

const parserProblem = await prometheusParserProblem();
if (parserProblem !== undefined) {
  // deno-lint-ignore no-console
  console.log(`metrics_test: the /metrics parsing test is skipped: ${parserProblem}`);
}

/** The listener's URL, from the supervisor's log line. */
async function metricsUrl(worker: Worker): Promise<string> {
  return await waitFor(() => {
    const found = worker.output().match(/serving metrics on (http:\/\/\S+)\/metrics/);
    return found?.[1];
  }, { timeoutMs: 30_000, what: "metrics listener" }).catch((error) => {
    throw new Error(`${error.message}\n${worker.output()}`);
  });
}

async function scrape(url: string): Promise<{ text: string; families: ParsedFamily[] }> {
  const response = await fetch(`${url}/metrics`);
  assert.equal(response.status, 200);
  assert.match(String(response.headers.get("content-type")), /^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  return { text, families: await parsePrometheusText(text) };
}

async function probe(url: string, path: "/healthz" | "/readyz") {
  const response = await fetch(`${url}${path}`);
  const body = await response.json() as { status: string; reasons: string[] };
  return { status: response.status, verdict: body.status, reasons: body.reasons };
}

Deno.test({
  name: "metrics: a known workload is counted exactly and /metrics parses with prometheus_client",
  ignore: parserProblem !== undefined,
  async fn() {
    await using stack = await startStack();
    await using normalize = await prepareNormalize(stack, {
      label: "metrics",
      text: "hello   \r\nworld\n\n\n",
    });
    await using worker = startWorker(stack, [
      NORMALIZE_EXAMPLE,
      "-j",
      "2",
      "--metrics-address",
      "127.0.0.1:0",
    ]);
    const url = await metricsUrl(worker);
    // 3 attempts that complete; 1 workflow whose 3 attempts (retry count 2) all fail; 1
    // writable attempt that downloads one object and publishes two.
    const ok = await Promise.all([1, 2, 3].map((a) => stack.startWorkflow({ a, b: 1 })));
    const bad = await stack.startWorkflow({ a: 1, b: 1, read: "/etc/passwd" });
    const norm = await normalize.start();
    for (const id of ok) await stack.waitWorkflow(id, "COMPLETED", 30_000);
    await stack.waitWorkflow(bad, "FAILED", 30_000);
    await stack.waitWorkflow(norm, "COMPLETED", 30_000);

    const probeType = { taskType: stack.taskName };
    const normType = { taskType: "normalize_text" };
    // Broker records arrive within a second of the delivery: wait for the last of them.
    let families = await waitFor(async () => {
      const { families } = await scrape(url);
      const delivered = sampleValue(families, "perago_task_update_total", { how: "delivered" });
      return delivered === 7 ? families : undefined;
    }, { timeoutMs: 15_000, what: "7 results counted as delivered" });
    const value = (name: string, labels: Record<string, string> = {}) =>
      sampleValue(families, name, labels);

    // Attempts by outcome, counted once each.
    assert.equal(value("perago_attempts_total", { ...probeType, outcome: "COMPLETED" }), 3);
    assert.equal(value("perago_attempts_total", { ...probeType, outcome: "FAILED" }), 3);
    assert.equal(value("perago_attempts_total", { ...normType, outcome: "COMPLETED" }), 1);
    assert.equal(value("perago_attempts_total"), 7);
    assert.equal(value("perago_task_execution_started_total", probeType), 6);
    assert.equal(value("perago_task_execute_time_seconds_count", probeType), 6);
    assert.equal(
      value("perago_task_execute_time_seconds_bucket", { ...probeType, le: "+Inf" }),
      6,
    );
    // Phases of the writable attempt: one observation each.
    for (const phase of ["download", "snapshot", "run", "stage", "publish", "cleanup"]) {
      assert.equal(
        value("perago_attempt_phase_seconds_count", { ...normType, phase }),
        1,
        `phase ${phase}`,
      );
    }
    assert.equal(value("perago_attempt_phase_seconds_count", { ...probeType, phase: "run" }), 6);
    // What moved: one object down (18 bytes), the normalised file and the manifest up.
    const io = (operation: string) => ({ ...normType, operation });
    assert.equal(value("perago_workspace_io_objects_total", io("download")), 1);
    assert.equal(value("perago_workspace_io_bytes_total", io("download")), 18);
    assert.equal(value("perago_workspace_io_objects_total", io("upload")), 2);
    assert.ok(value("perago_workspace_io_bytes_total", io("upload")) > 12);
    // The broker: polls, tasks received, results delivered.
    assert.ok(value("perago_task_poll_total", probeType) >= 1);
    assert.equal(value("perago_task_poll_tasks_total", probeType), 6);
    assert.equal(value("perago_task_poll_tasks_total", normType), 1);
    assert.equal(
      value("perago_task_update_total", { ...probeType, status: "COMPLETED", how: "delivered" }),
      3,
    );
    assert.equal(
      value("perago_task_update_total", { ...probeType, status: "FAILED", how: "delivered" }),
      3,
    );
    assert.equal(value("perago_task_update_time_seconds_count", probeType), 6);
    // The supervisor's own view.
    families = (await scrape(url)).families;
    assert.equal(value("perago_result_backlog"), 0);
    assert.equal(value("perago_executors_up"), 2);
    assert.equal(value("perago_free_slots"), 2);
    assert.equal(value("perago_slots"), 2);
    assert.equal(value("perago_attempts_in_flight", probeType), 0);
    assert.equal(value("perago_executor_restarts_total"), 0);
    assert.equal(value("perago_build_info", { execution_mode: "process" }), 1);
    // Types as declared.
    const type = (name: string) => families.find((f) => f.name === name)?.type;
    assert.equal(type("perago_attempts"), "counter");
    assert.equal(type("perago_task_execute_time_seconds"), "histogram");
    assert.equal(type("perago_free_slots"), "gauge");
    // No label holds an id.
    const ids = new RegExp(`${ok[0]}|${bad}|${norm}`);
    for (const family of families) {
      for (const sample of family.samples) {
        assert.doesNotMatch(JSON.stringify(sample.labels), ids, sample.name);
      }
    }

    assert.equal((await probe(url, "/healthz")).status, 200);
    const ready = await waitFor(async () => {
      const answer = await probe(url, "/readyz");
      return answer.status === 200 ? answer : undefined;
    }, { timeoutMs: 15_000, what: "/readyz 200" });
    assert.deepEqual(ready.reasons, []);
    assert.equal(await stopWorker(worker), 0, worker.output());
  },
});

Deno.test("metrics: /readyz is 503 while Conductor is unreachable and during a drain, 200 between", async () => {
  await using stack = await startStack();
  await using worker = startWorker(stack, ["--metrics-address", "127.0.0.1:0"]);
  const url = await metricsUrl(worker);
  const readyIs = (status: number, reason?: RegExp) =>
    waitFor(async () => {
      const answer = await probe(url, "/readyz");
      if (answer.status !== status) return undefined;
      if (reason && !answer.reasons.some((r) => reason.test(r))) return undefined;
      return answer;
    }, { timeoutMs: 20_000, what: `/readyz ${status} ${reason ?? ""}` });
  await readyIs(200);

  stack.conductor.faults.set({ errorRate: 1 });
  const down = await readyIs(503, /^conductor unreachable/);
  assert.equal((await probe(url, "/healthz")).status, 200, "alive while Conductor is down");
  assert.doesNotMatch(JSON.stringify(down), /secret|password/i);
  stack.conductor.faults.reset();
  await readyIs(200);

  // A drain: an attempt still running, SIGTERM sent; not ready until the process exits.
  const id = await stack.startWorkflow({ a: 1, b: 2, sleepMs: 3_000 });
  await waitForOutput(worker, /attempt a1: task \S+ of \S+ started/, {
    timeoutMs: 15_000,
    what: "attempt started",
  });
  worker.kill("SIGTERM");
  await readyIs(503, /^draining/);
  assert.equal((await worker.status).code, 0, worker.output());
  assert.equal((await stack.api.getWorkflow(id)).status, "COMPLETED");
});

Deno.test("metrics: a taken port stops perago start with one clear line", async () => {
  await using stack = await startStack();
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  const worker = startWorker(stack, ["--metrics-address", `127.0.0.1:${port}`]);
  const status = await worker.status;
  assert.equal(status.code, 1, worker.output());
  assert.match(
    worker.output(),
    new RegExp(
      `error: cannot listen for metrics on 127\\.0\\.0\\.1:${port}: the address is already in ` +
        "use; set --metrics-address to a free port",
    ),
  );
  assert.doesNotMatch(worker.output(), /executor \S+ started/, "no child was started");
  // The same check for the setting in the environment, and a malformed value.
  stack.env.PERAGO_METRICS_ADDRESS = "localhost";
  const bad = startWorker(stack);
  assert.equal((await bad.status).code, 1);
  assert.match(
    bad.output(),
    /error: PERAGO_METRICS_ADDRESS must be host:port such as '127\.0\.0\.1:9464'.*\(got "localhost"\)/,
  );
});
