import assert from "node:assert/strict";
import {
  compileControls,
  type ControlsOptions,
  DEFAULT_CONTROLS,
} from "../../src/task/controls.ts";
import { TaskDefinitionError } from "../../src/task/errors.ts";

Deno.test("compileControls fills the defaults", () => {
  const controls = compileControls();
  assert.deepEqual(controls, {
    retry: { count: 3, logic: "FIXED", delaySeconds: 60, maxDelaySeconds: 0, jitterMs: 0 },
    timeout: {
      policy: "TIME_OUT_WF",
      seconds: 0,
      responseSeconds: 600,
      pollSeconds: 0,
      totalSeconds: 0,
    },
    limits: {
      concurrentExecLimit: undefined,
      rateLimitPerFrequency: undefined,
      rateLimitFrequencyInSeconds: undefined,
    },
    publishBudget: undefined,
  });
  assert.deepEqual(compileControls({}), DEFAULT_CONTROLS);
  assert.ok(Object.isFrozen(controls) && Object.isFrozen(controls.retry));
});

Deno.test("compileControls keeps valid values and fills the rest", () => {
  const controls = compileControls({
    retry: { count: 10, logic: "EXPONENTIAL_BACKOFF", delaySeconds: 2, maxDelaySeconds: 30 },
    timeout: { policy: "RETRY", seconds: 120, responseSeconds: 120, totalSeconds: 600 },
    limits: { concurrentExecLimit: 4, rateLimitPerFrequency: 10, rateLimitFrequencyInSeconds: 60 },
  });
  assert.deepEqual(controls.retry, {
    count: 10,
    logic: "EXPONENTIAL_BACKOFF",
    delaySeconds: 2,
    maxDelaySeconds: 30,
    jitterMs: 0,
  });
  assert.equal(controls.timeout.policy, "RETRY");
  assert.equal(controls.timeout.pollSeconds, 0);
  assert.deepEqual(controls.limits, {
    concurrentExecLimit: 4,
    rateLimitPerFrequency: 10,
    rateLimitFrequencyInSeconds: 60,
  });
  assert.equal(compileControls({ retry: { count: 0 } }).retry.count, 0);
  assert.equal(
    compileControls({ limits: { concurrentExecLimit: 0 } }).limits.concurrentExecLimit,
    0,
  );
});

const BAD: [string, unknown, string, RegExp][] = [
  ["not an object", "fast", "controls", /must be an object/],
  ["unknown top key", { retries: {} }, "controls.retries", /unknown key/],
  ["unknown retry key", { retry: { counts: 1 } }, "controls.retry.counts", /unknown key/],
  ["retry count above 10", { retry: { count: 11 } }, "controls.retry.count", /0 to 10, got 11/],
  ["negative retry count", { retry: { count: -1 } }, "controls.retry.count", /got -1/],
  ["fractional count", { retry: { count: 1.5 } }, "controls.retry.count", /integer/],
  ["NaN delay", { retry: { delaySeconds: NaN } }, "controls.retry.delaySeconds", /got NaN/],
  ["string delay", { retry: { delaySeconds: "5" } }, "controls.retry.delaySeconds", /got "5"/],
  ["negative jitter", { retry: { jitterMs: -5 } }, "controls.retry.jitterMs", /integer/],
  ["bad logic", { retry: { logic: "RANDOM" } }, "controls.retry.logic", /one of FIXED/],
  [
    "max delay with FIXED",
    { retry: { maxDelaySeconds: 100 } },
    "controls.retry.maxDelaySeconds",
    /no effect with logic FIXED/,
  ],
  [
    "max delay below delay",
    { retry: { logic: "LINEAR_BACKOFF", delaySeconds: 60, maxDelaySeconds: 10 } },
    "controls.retry.maxDelaySeconds",
    /below retry.delaySeconds/,
  ],
  ["bad policy", { timeout: { policy: "NEVER" } }, "controls.timeout.policy", /one of TIME_OUT_WF/],
  ["response 0", { timeout: { responseSeconds: 0 } }, "controls.timeout.responseSeconds", /from 1/],
  ["negative seconds", { timeout: { seconds: -1 } }, "controls.timeout.seconds", /from 0/],
  ["negative poll", { timeout: { pollSeconds: -1 } }, "controls.timeout.pollSeconds", /from 0/],
  ["negative total", { timeout: { totalSeconds: -1 } }, "controls.timeout.totalSeconds", /from 0/],
  [
    "response above seconds (TaskTimeoutConstraint)",
    { timeout: { seconds: 60, responseSeconds: 61 } },
    "controls.timeout.responseSeconds",
    /greater than timeout.seconds 60/,
  ],
  [
    "default response above seconds",
    { timeout: { seconds: 300 } },
    "controls.timeout.responseSeconds",
    /600 is greater than timeout.seconds 300/,
  ],
  [
    "seconds above total",
    { timeout: { seconds: 100, responseSeconds: 50, totalSeconds: 99 } },
    "controls.timeout.seconds",
    /greater than timeout.totalSeconds 99/,
  ],
  [
    "rate limit without frequency",
    { limits: { rateLimitPerFrequency: 5 } },
    "controls.limits.rateLimitFrequencyInSeconds",
    /required when rateLimitPerFrequency is given/,
  ],
  [
    "frequency without rate limit",
    { limits: { rateLimitFrequencyInSeconds: 5 } },
    "controls.limits.rateLimitPerFrequency",
    /required when rateLimitFrequencyInSeconds is given/,
  ],
  [
    "zero rate limit",
    { limits: { rateLimitPerFrequency: 0, rateLimitFrequencyInSeconds: 1 } },
    "controls.limits.rateLimitPerFrequency",
    /from 1/,
  ],
  [
    "negative concurrency",
    { limits: { concurrentExecLimit: -1 } },
    "controls.limits.concurrentExecLimit",
    /from 0/,
  ],
  ["limits array", { limits: [] }, "controls.limits", /must be an object, got an array/],
];

for (const [label, input, field, message] of BAD) {
  Deno.test(`compileControls rejects ${label}`, () => {
    assert.throws(() => compileControls(input as ControlsOptions, "demo_task"), (error: Error) => {
      assert.ok(error instanceof TaskDefinitionError, String(error));
      assert.equal(error.name, "TaskDefinitionError");
      assert.equal(error.field, field);
      assert.equal(error.taskName, "demo_task");
      assert.match(error.message, /^invalid task "demo_task": /);
      assert.ok(error.message.includes(field), error.message);
      assert.match(error.message, message);
      return true;
    });
  });
}
