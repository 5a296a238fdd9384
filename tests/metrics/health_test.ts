import assert from "node:assert/strict";
import {
  ContactTracker,
  type HealthInputs,
  liveness,
  readiness,
} from "../../src/metrics/health.ts";

const running: HealthInputs = {
  state: "running",
  brokerAlive: true,
  executorsUp: 2,
  executorSlots: 2,
  conductorProblem: undefined,
  lakefsProblem: undefined,
};

Deno.test("readiness: running, every executor up, both servers reached", () => {
  assert.deepEqual(readiness(running), { ok: true, reasons: [] });
  assert.deepEqual(readiness({ ...running, state: "draining" }).reasons, [
    "draining: not taking new tasks",
  ]);
  assert.deepEqual(readiness({ ...running, executorsUp: 1 }).reasons, ["executors up: 1 of 2"]);
  assert.deepEqual(readiness({ ...running, lakefsProblem: "unreachable: x" }).reasons, [
    "lakefs unreachable: x",
  ]);
  assert.equal(liveness({ ...running, state: "draining" }).ok, true, "alive while draining");
  assert.deepEqual(liveness({ ...running, brokerAlive: false }).reasons, ["broker not running"]);
  assert.equal(liveness({ ...running, state: "failed" }).ok, false);
});

Deno.test("ContactTracker: the last contact decides; a success older than the window does not count", () => {
  const tracker = new ContactTracker();
  assert.equal(tracker.problem(30_000, 0), "not contacted yet");
  tracker.ok(1_000);
  assert.equal(tracker.problem(30_000, 2_000), undefined);
  tracker.failed("request failed (TypeError)");
  assert.equal(tracker.problem(30_000, 2_000), "unreachable: request failed (TypeError)");
  tracker.ok(3_000);
  assert.equal(tracker.problem(30_000, 3_000), undefined);
  assert.equal(tracker.problem(30_000, 40_000), "not reached for 37 s");
});
