import assert from "node:assert/strict";
import { defineTask, z } from "../../mod.ts";
import { TaskDefinitionError } from "../../src/task/errors.ts";
import { createTaskMetrics, type TaskMetricRecord } from "../../src/task/metrics.ts";

function define(metrics: unknown) {
  return defineTask({
    name: "metered",
    ownerEmail: "a@example.com",
    description: "d",
    params: z.object({}),
    result: z.object({}),
    metrics: metrics as never,
    run: () => ({}),
  });
}

Deno.test("task metrics: declarations are checked when the task is defined", () => {
  const task = define({
    files: { kind: "counter", labels: ["kind"] },
    took: { kind: "timer" },
  });
  assert.deepEqual(task.metrics.files, {
    name: "files",
    kind: "counter",
    description: "",
    unit: "1",
    labels: ["kind"],
    buckets: undefined,
  });
  assert.equal(task.metrics.took?.unit, "s");
  for (
    const [metrics, detail] of [
      [{ "Bad-Name": { kind: "counter" } }, /metrics\.Bad-Name: a metric name is/],
      [{ x: { kind: "summary" } }, /metrics\.x\.kind: must be one of counter, gauge/],
      [{ x: { kind: "counter", labels: ["task_id"] } }, /task_id is reserved/],
      [{ x: { kind: "counter", labels: ["a", "a"] } }, /a label repeats/],
      [{ x: { kind: "histogram", buckets: [2, 1] } }, /ascending/],
      [{ x: { kind: "gauge", buckets: [1] } }, /only histograms and timers have buckets/],
      [{ x: { kind: "counter", color: "red" } }, /metrics\.x\.color: unknown field/],
      [[], /metrics: must be an object/],
    ] as const
  ) {
    assert.throws(
      () => define(metrics),
      (error: Error) => error instanceof TaskDefinitionError && detail.test(error.message),
      JSON.stringify(metrics),
    );
  }
});

Deno.test("task metrics: records are checked; undeclared names and labels throw, never drop", () => {
  const task = define({
    files: { kind: "counter", labels: ["kind"] },
    depth: { kind: "gauge" },
    took: { kind: "timer" },
  });
  const records: TaskMetricRecord[] = [];
  const metrics = createTaskMetrics(task.name, task.metrics, (r) => records.push(r));
  metrics.counter("files", 2, { kind: "txt" });
  metrics.counter("files");
  metrics.gauge("depth", -1);
  {
    using _t = metrics.timer("took");
  }
  assert.deepEqual(records.slice(0, 3), [
    { op: "inc", name: "app_files_total", labels: { task_name: "metered", kind: "txt" }, value: 2 },
    { op: "inc", name: "app_files_total", labels: { task_name: "metered", kind: "" }, value: 1 },
    { op: "set", name: "app_depth", labels: { task_name: "metered" }, value: -1 },
  ]);
  assert.equal(records[3]?.name, "app_took");
  assert.equal(records[3]?.op, "observe");
  assert.throws(
    () => metrics.counter("nope"),
    /declares no metric "nope" \(declared: files, depth, took\)/,
  );
  assert.throws(() => metrics.counter("files", 1, { color: "red" }), /declares no label "color"/);
  assert.throws(() => metrics.gauge("files", 1), /files is declared as a counter/);
  assert.throws(() => metrics.counter("files", -1), RangeError);
  assert.throws(() => metrics.timer("took", { kind: "x" }), /declares no label "kind"/);
  assert.equal(records.length, 4, "nothing recorded by a refused call");
});
