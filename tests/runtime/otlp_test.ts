/**
 * OTLP export through Deno's built-in OpenTelemetry (`OTEL_DENO=true`): a task that records
 * its own metrics through `ctx.metrics`, run by `perago start`, and an OTLP/HTTP receiver in
 * the test that must get `app.<name>` series with the task name as a label, perago's runtime
 * series, and the runtime series of perago for Python under their names and labels.
 */
import assert from "node:assert/strict";
import { DEMO_SECRET_ACCESS_KEY } from "../../src/devstack/credentials.ts";
import { loadTask } from "../../src/task/loader.ts";
import { buildTaskDef } from "../../src/task/taskdef.ts";
import { waitFor } from "../../src/util/sleep.ts";
import { attrs, type OtlpMetric, type OtlpPoint, startOtlpReceiver } from "./_otlp_receiver.ts";
import { NORMALIZE_EXAMPLE, prepareNormalize } from "./_normalize_example.ts";
import { startStack, startWorker, stopWorker } from "./_stack.ts";

const MOD = new URL("../../mod.ts", import.meta.url).href;

const METRICS_TASK = (name: string) => `
import { defineTask, z } from "${MOD}";
export default defineTask({
  name: "${name}",
  ownerEmail: "tests@example.com",
  description: "records its own metrics",
  params: z.object({ items: z.array(z.string()) }),
  result: z.object({ seen: z.number() }),
  metrics: {
    items_seen: { kind: "counter", description: "Items looked at.", labels: ["kind"] },
    queue_depth: { kind: "gauge" },
    item_size: { kind: "histogram", unit: "By", buckets: [1, 10, 100] },
    step: { kind: "timer" },
  },
  run({ items }, ctx) {
    using _timer = ctx.metrics.timer("step");
    for (const item of items) {
      ctx.metrics.counter("items_seen", 1, { kind: item.length > 3 ? "long" : "short" });
      ctx.metrics.histogram("item_size", item.length);
    }
    ctx.metrics.gauge("queue_depth", items.length);
    return { seen: items.length };
  },
});
`;

/** The latest data points of `name` (cumulative: the last export holds the totals). */
function latest(metrics: readonly OtlpMetric[], name: string): OtlpPoint[] {
  const found = metrics.filter((m) => m.name === name);
  const last = found[found.length - 1];
  return last?.sum?.dataPoints ?? last?.gauge?.dataPoints ?? last?.histogram?.dataPoints ?? [];
}

function pointValue(point: OtlpPoint): number {
  return point.asDouble ?? Number(point.asInt ?? point.count ?? NaN);
}

/**
 * How long a stop may take with OTEL_DENO on. Under load, Deno's own telemetry flush in
 * `Deno.exit` sometimes stalls a process that has drained and ended (seen in 4 of 10 runs
 * of 10 side by side, before and after the executor lanes): the supervisor kills children
 * that do not exit within 10 s, and may itself stall as long.
 */
const OTEL_STOP_DEADLINE_MS = 45_000;

Deno.test("otlp: task-owned metrics (ctx.metrics) and the runtime series reach an OTLP receiver", async () => {
  await using stack = await startStack();
  await using receiver = startOtlpReceiver();
  const taskName = `metered_${Deno.pid}`;
  const modulePath = `${stack.dir}/tasks/metered.ts`;
  await Deno.writeTextFile(modulePath, METRICS_TASK(taskName));
  const { task } = await loadTask(modulePath);
  await stack.api.registerTaskDefs([buildTaskDef(task)]);
  await stack.api.upsertWorkflowDefs([{
    name: `${taskName}_wf`,
    version: 1,
    schemaVersion: 2,
    ownerEmail: "tests@example.com",
    tasks: [{
      name: taskName,
      taskReferenceName: "m",
      type: "SIMPLE",
      inputParameters: { params: "${workflow.input.params}" },
    }],
    outputParameters: { seen: "${m.output.result.seen}" },
  }]);
  Object.assign(stack.env, {
    OTEL_DENO: "true",
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_METRIC_EXPORT_INTERVAL: "300",
    OTEL_SERVICE_NAME: "perago-otlp-test",
    PERAGO_INSTANCE_ID: "instance-7",
  });
  await using worker = startWorker({ ...stack, modulePath });
  for (const items of [["a", "bb", "cccc"], ["dddddd", "e"]]) {
    const id = await stack.api.startWorkflow(`${taskName}_wf`, { params: { items } });
    await stack.waitWorkflow(id, "COMPLETED", 30_000);
  }
  const metrics = await waitFor(() => {
    const all = receiver.metrics();
    const counted = latest(all, "app.items_seen").reduce((n, p) => n + pointValue(p), 0);
    const attempts = latest(all, "runtime.task_attempt_duration_seconds")
      .reduce((n, p) => n + pointValue(p), 0);
    return counted === 5 && attempts === 2 ? all : undefined;
  }, { timeoutMs: 20_000, what: "app.items_seen = 5 and two attempts exported" })
    .catch((error) => {
      const names = [...new Set(receiver.metrics().map((m) => m.name))].join(", ");
      throw new Error(`${error.message}; exported: ${names}\n${worker.output()}`);
    });

  // Task-owned: app.<name>, task_name label, declared labels, no attempt ids.
  const seen = latest(metrics, "app.items_seen").map((p) => ({
    labels: attrs(p.attributes),
    value: pointValue(p),
  })).sort((a, b) => a.labels.kind!.localeCompare(b.labels.kind!));
  assert.deepEqual(seen, [
    { labels: { task_name: taskName, kind: "long" }, value: 2 },
    { labels: { task_name: taskName, kind: "short" }, value: 3 },
  ]);
  const depth = latest(metrics, "app.queue_depth");
  assert.equal(pointValue(depth[0]!), 2);
  assert.deepEqual(attrs(depth[0]!.attributes), { task_name: taskName });
  const sizes = latest(metrics, "app.item_size");
  assert.equal(Number(sizes[0]!.count), 5);
  assert.equal(sizes[0]!.sum, 1 + 2 + 4 + 6 + 1);
  assert.equal(Number(latest(metrics, "app.step")[0]!.count), 2);
  assert.equal(metrics.find((m) => m.name === "app.item_size")?.unit, "By");

  // perago's own series over OTLP (no _total), and the perago-for-Python ones.
  const attempts = latest(metrics, "perago_attempts");
  assert.deepEqual(
    attempts.map((p) => [attrs(p.attributes), pointValue(p)]),
    [[{ taskType: taskName, outcome: "COMPLETED" }, 2]],
  );
  const duration = latest(metrics, "runtime.task_attempt_duration_seconds");
  assert.deepEqual(attrs(duration[0]!.attributes), { task_name: taskName });
  const busy = latest(metrics, "runtime.busy_slots");
  assert.deepEqual(attrs(busy[0]!.attributes), {
    task_name: taskName,
    perago_instance_id: "instance-7",
  });
  assert.equal(pointValue(busy[0]!), 0);
  assert.equal(await stopWorker(worker, OTEL_STOP_DEADLINE_MS), 0, worker.output());
});

Deno.test("otlp: an attempt is a span with a child per phase; its lakeFS and Conductor requests are its children; log lines carry its trace id", async () => {
  await using stack = await startStack();
  await using receiver = startOtlpReceiver();
  await using normalize = await prepareNormalize(stack, { label: "traced", text: "traced  \n" });
  Object.assign(stack.env, {
    OTEL_DENO: "true",
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_METRIC_EXPORT_INTERVAL: "60000",
    OTEL_BSP_SCHEDULE_DELAY: "200",
    OTEL_SERVICE_NAME: "perago-trace-test",
  });
  await using worker = startWorker({ ...stack, modulePath: NORMALIZE_EXAMPLE });
  const id = await normalize.start();
  const wf = await stack.waitWorkflow(id, "COMPLETED", 30_000);
  const taskId = String(wf.tasks[0]!.taskId);
  const isAttempt = (s: { name: string; attributes: Parameters<typeof attrs>[0] }) =>
    s.name === "perago.attempt" && attrs(s.attributes)["conductor.task_id"] === taskId;
  // The broker's spans leave another process: wait for the result delivery's too.
  const spans = await waitFor(() => {
    const all = receiver.spans();
    const attempt = all.find(isAttempt);
    if (!attempt) return undefined;
    const children = all.filter((s) => s.parentSpanId === attempt.spanId);
    const conductor = children.filter((s) =>
      /\/api\/tasks/.test(attrs(s.attributes)["url.path"] ?? "")
    );
    return conductor.length >= 3 ? all : undefined; // two fences and the result
  }, { timeoutMs: 20_000, what: "the attempt's spans" }).catch((error) => {
    const names = receiver.spans().map((s) => `${s.scope}:${s.name}`).join(", ");
    throw new Error(`${error.message}; spans: ${names}\n${worker.output()}`);
  });
  const attempt = spans.find(isAttempt)!;
  assert.deepEqual(
    {
      ...attrs(attempt.attributes),
      "perago.worker_id": undefined,
    },
    {
      "perago.task_type": "normalize_text",
      "perago.worker_id": undefined,
      "conductor.workflow_instance_id": id,
      "conductor.task_id": taskId,
      "conductor.retry_count": "0",
      "perago.outcome": "COMPLETED",
    },
  );
  assert.equal(attempt.parentSpanId ?? "", "", "the attempt is a root span");
  const children = spans.filter((s) =>
    s.traceId === attempt.traceId && s.parentSpanId === attempt.spanId
  );
  const phases = children.filter((s) => s.scope === "perago").map((s) => s.name);
  assert.deepEqual(phases.sort(), [
    "perago.cleanup",
    "perago.download",
    "perago.publish",
    "perago.run",
    "perago.snapshot", // before the task runs
    "perago.snapshot", // after
    "perago.stage",
  ]);
  const requests = children.filter((s) => s.scope === "deno" && s.kind === 3);
  const paths = requests.map((s) => attrs(s.attributes)["url.path"] ?? "");
  assert.ok(
    paths.some((p) => p.startsWith(`/api/v1/repositories/${normalize.repo}/`)),
    paths.join("\n"),
  );
  assert.ok(paths.includes(`/api/tasks/${taskId}`), "a fence look-up (the broker's)");
  // The result goes out as a plain update, or as update-v2 when its slot may take the next task.
  assert.ok(
    paths.includes("/api/tasks") || paths.includes("/api/tasks/update-v2"),
    "the result delivery (the broker's)",
  );
  // No secret, no credential header in any attribute of any span.
  const everything = JSON.stringify(spans);
  assert.ok(!everything.includes(DEMO_SECRET_ACCESS_KEY), "no lakeFS secret");
  assert.doesNotMatch(everything, /authorization|Basic /i);

  // The executor's log lines of the attempt carry its trace id.
  const lines: Record<string, unknown>[] = [];
  for await (const entry of walk(stack.logRoot)) {
    if (!entry.endsWith(".jsonl")) continue;
    for (const line of (await Deno.readTextFile(entry)).split("\n")) {
      if (line.trim() !== "") lines.push(JSON.parse(line));
    }
  }
  const ended = lines.find((l) =>
    l.task_id === taskId && /ended COMPLETED/.test(String(l.message))
  );
  assert.equal(ended?.trace_id, attempt.traceId, JSON.stringify(ended));
  assert.equal(await stopWorker(worker, OTEL_STOP_DEADLINE_MS), 0, worker.output());
});

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) yield* walk(path);
    else if (entry.isFile) yield path;
  }
}
