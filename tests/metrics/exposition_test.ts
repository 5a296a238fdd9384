import assert from "node:assert/strict";
import { renderPrometheusText } from "../../src/metrics/exposition.ts";
import { MetricsRegistry } from "../../src/metrics/registry.ts";
import { applyMetricRecords, MetricBuffer, type MetricRecord } from "../../src/metrics/events.ts";
import { waitFor } from "../../src/util/sleep.ts";
import {
  parsePrometheusText,
  prometheusParserProblem,
  sampleValue,
} from "../_prometheus_parser.ts";

const parserProblem = await prometheusParserProblem();
if (parserProblem !== undefined) {
  // deno-lint-ignore no-console
  console.log(`exposition_test: parser tests skipped: ${parserProblem}`);
}

function registry(): MetricsRegistry {
  const r = new MetricsRegistry();
  r.define({
    name: "jobs_total",
    help: "Jobs\\done\nover lines.",
    kind: "counter",
    labelNames: ["kind"],
  });
  r.define({ name: "temp", help: "A gauge.", kind: "gauge", labelNames: [] });
  r.define({
    name: "wait_seconds",
    help: "A histogram.",
    kind: "histogram",
    labelNames: ["kind"],
    buckets: [0.1, 1],
  });
  return r;
}

Deno.test({
  name: "exposition: escaped labels and help, histograms cumulative; prometheus_client reads it",
  ignore: parserProblem !== undefined,
  async fn() {
    const r = registry();
    r.inc("jobs_total", { kind: 'a "quoted"\\ value\nwith a line feed' }, 2);
    r.inc("jobs_total", { kind: "plain" });
    r.set("temp", {}, -3.5);
    for (const v of [0.05, 0.5, 0.5, 7]) r.observe("wait_seconds", { kind: "x" }, v);
    const text = renderPrometheusText(r.collect());
    const families = await parsePrometheusText(text);
    assert.equal(
      sampleValue(families, "jobs_total", { kind: 'a "quoted"\\ value\nwith a line feed' }),
      2,
    );
    assert.equal(sampleValue(families, "jobs_total", { kind: "plain" }), 1);
    assert.equal(sampleValue(families, "temp"), -3.5);
    assert.equal(sampleValue(families, "wait_seconds_bucket", { kind: "x", le: "0.1" }), 1);
    assert.equal(sampleValue(families, "wait_seconds_bucket", { kind: "x", le: "1" }), 3);
    assert.equal(sampleValue(families, "wait_seconds_bucket", { kind: "x", le: "+Inf" }), 4);
    assert.equal(sampleValue(families, "wait_seconds_count", { kind: "x" }), 4);
    assert.equal(sampleValue(families, "wait_seconds_sum", { kind: "x" }), 8.05);
  },
});

Deno.test("registry: undeclared metrics and labels are refused, never dropped silently", () => {
  const r = registry();
  assert.throws(() => r.inc("nope_total"), /nope_total is not declared/);
  assert.throws(() => r.inc("jobs_total", { kind: "a", id: "x" }), /has no label "id"/);
  assert.throws(() => r.inc("jobs_total", {}), /needs the label kind/);
  assert.throws(() => r.inc("jobs_total", { kind: "a" }, -1), RangeError);
  assert.throws(() => r.observe("temp", {}, 1), /temp is a gauge/);
  const refused = applyMetricRecords(r, [
    { op: "inc", name: "jobs_total", labels: { kind: "a" }, value: 1 },
    { op: "inc", name: "ghost_total", labels: {}, value: 1 },
  ]);
  assert.equal(refused.length, 1);
  assert.match(refused[0]!.reason, /ghost_total is not declared/);
  assert.equal(r.collect()[0]!.series[0]!.value, 1);
});

Deno.test("exposition: a declared family with no series yet is described", () => {
  const text = renderPrometheusText(registry().collect());
  assert.match(text, /^# HELP jobs_total Jobs\\\\done\\nover lines\.$/m);
  assert.match(text, /^# TYPE wait_seconds histogram$/m);
});

Deno.test("MetricBuffer: increments of one series in a batch add up in one record, in order with the other kinds", () => {
  const sent: MetricRecord[][] = [];
  const buffer = new MetricBuffer((records) => sent.push(records), { flushMs: 60_000 });
  buffer.inc("polls_total", { taskType: "a" });
  buffer.inc("polls_total", { taskType: "b" });
  buffer.inc("polls_total", { taskType: "a" }, 2);
  buffer.observe("poll_seconds", { taskType: "a" }, 0.5);
  buffer.set("held", { taskType: "a" }, 3);
  buffer.inc("held", { taskType: "a" });
  buffer.set("held", { taskType: "a" }, 0);
  buffer.inc("held", { taskType: "a" }); // after the set: a record of its own
  buffer.flush();
  assert.deepEqual(sent, [[
    { op: "inc", name: "polls_total", labels: { taskType: "a" }, value: 3 },
    { op: "inc", name: "polls_total", labels: { taskType: "b" }, value: 1 },
    { op: "observe", name: "poll_seconds", labels: { taskType: "a" }, value: 0.5 },
    { op: "set", name: "held", labels: { taskType: "a" }, value: 3 },
    { op: "inc", name: "held", labels: { taskType: "a" }, value: 1 },
    { op: "set", name: "held", labels: { taskType: "a" }, value: 0 },
    { op: "inc", name: "held", labels: { taskType: "a" }, value: 1 },
  ]]);
  buffer.inc("polls_total", { taskType: "a" });
  buffer.flush();
  assert.deepEqual(sent[1], [{
    op: "inc",
    name: "polls_total",
    labels: { taskType: "a" },
    value: 1,
  }]);
});

Deno.test("MetricBuffer.flushWithin: records queued before the deadline join one batch; 0 sends at once", async () => {
  const sent: MetricRecord[][] = [];
  const buffer = new MetricBuffer((records) => sent.push(records), { flushMs: 60_000 });
  buffer.inc("attempts_total", { taskType: "a" });
  buffer.flushWithin(0);
  assert.equal(sent.length, 1);
  buffer.inc("attempts_total", { taskType: "a" });
  buffer.flushWithin(30);
  buffer.inc("attempts_total", { taskType: "a" });
  buffer.observe("attempt_seconds", { taskType: "a" }, 0.25);
  buffer.flushWithin(30); // already armed: the first deadline holds
  assert.equal(sent.length, 1, "nothing more sent before the deadline");
  await waitFor(() => sent.length === 2, { timeoutMs: 5_000, what: "the held batch" });
  assert.deepEqual(sent[1], [
    { op: "inc", name: "attempts_total", labels: { taskType: "a" }, value: 2 },
    { op: "observe", name: "attempt_seconds", labels: { taskType: "a" }, value: 0.25 },
  ]);
  buffer.flushWithin(30); // nothing queued: nothing armed
  buffer.inc("attempts_total", { taskType: "b" });
  buffer.flushWithin(60_000);
  buffer.flush(); // an explicit flush sends the held records and disarms the deadline
  assert.equal(sent.length, 3);
  assert.deepEqual(sent[2], [{
    op: "inc",
    name: "attempts_total",
    labels: { taskType: "b" },
    value: 1,
  }]);
});
