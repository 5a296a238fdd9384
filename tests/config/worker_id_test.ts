import assert from "node:assert/strict";
import { ConfigError } from "../../src/config/errors.ts";
import {
  brokerWorkerId,
  childEnvironment,
  childWorkerId,
  defaultWorkerIdPrefix,
  moduleStem,
  resolveWorkerId,
  resolveWorkerIdPrefix,
} from "../../src/config/worker_id.ts";

const P = "PERAGO_WORKER_ID_PREFIX";

const stems: Array<[string, string]> = [
  ["examples/normalize_text.ts", "normalize_text"],
  ["./tasks/build.ts", "build"],
  ["/abs/path/Features-Build.v2.ts", "Features-Build.v2"],
  ["file:///srv/tasks/my%20task.ts", "my task"],
  ["https://example.com/tasks/remote_task.ts?v=1#x", "remote_task"],
  ["C:\\tasks\\win_task.ts", "win_task"],
  ["noext", "noext"],
  [".hidden", ".hidden"],
];
for (const [target, stem] of stems) {
  Deno.test(`moduleStem(${JSON.stringify(target)})`, () => {
    assert.equal(moduleStem(target), stem);
  });
}

const prefixes: Array<[string, string]> = [
  ["examples/normalize_text.ts", "normalizetext"],
  ["/abs/path/Features-Build.v2.ts", "FeaturesBuildv2"],
  ["https://example.com/tasks/remote_task.ts", "remotetask"],
  ["tasks/été_2.ts", "t2"],
];
for (const [target, prefix] of prefixes) {
  Deno.test(`defaultWorkerIdPrefix(${JSON.stringify(target)})`, () => {
    assert.equal(defaultWorkerIdPrefix(target), prefix);
  });
}

function assertConfigError(fn: () => unknown, message: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.message, message);
    assert.equal(error.variable, P);
    return true;
  });
}

Deno.test("defaultWorkerIdPrefix rejects a module name without ASCII letters or digits", () => {
  assertConfigError(
    () => defaultWorkerIdPrefix("tasks/___.ts"),
    `${P} must not be empty (the module "tasks/___.ts" has no ASCII letters or digits to derive it from)`,
  );
});

const resolved: Array<[Record<string, string>, string | { error: string }]> = [
  [{}, "build"],
  [{ [P]: "featuresBuild" }, "featuresBuild"],
  [{ [P]: "  abc123  " }, "abc123"],
  [{ [P]: "" }, { error: `${P} must not be empty` }],
  [{ [P]: "   " }, { error: `${P} must not be empty` }],
  [{ [P]: "has-dash" }, {
    error: `${P} must contain only ASCII letters and digits (got "has-dash")`,
  }],
  [{ [P]: "ümlaut" }, { error: `${P} must contain only ASCII letters and digits (got "ümlaut")` }],
  [{ [P]: "a b" }, { error: `${P} must contain only ASCII letters and digits (got "a b")` }],
];
for (const [env, expected] of resolved) {
  Deno.test(`resolveWorkerIdPrefix(${JSON.stringify(env)})`, () => {
    if (typeof expected === "string") {
      assert.equal(resolveWorkerIdPrefix("tasks/build.ts", env), expected);
    } else {
      assertConfigError(() => resolveWorkerIdPrefix("tasks/build.ts", env), expected.error);
    }
  });
}

Deno.test("resolveWorkerId uses PERAGO_WORKER_ID, else <default prefix>-pid-<pid>", () => {
  assert.equal(resolveWorkerId("tasks/build.ts", { PERAGO_WORKER_ID: "build0007" }), "build0007");
  assert.equal(resolveWorkerId("tasks/build.ts", { PERAGO_WORKER_ID: " w1 " }), "w1");
  assert.equal(resolveWorkerId("tasks/build.ts", {}, 4242), "build-pid-4242");
  assert.equal(resolveWorkerId("tasks/build.ts", { PERAGO_WORKER_ID: "" }, 7), "build-pid-7");
  assert.equal(resolveWorkerId("tasks/build.ts", {}), `build-pid-${Deno.pid}`);
  // The fallback uses the module's default prefix, not PERAGO_WORKER_ID_PREFIX.
  assert.equal(resolveWorkerId("tasks/build.ts", { [P]: "other" }, 1), "build-pid-1");
});

Deno.test("childWorkerId pads the slot to four digits; brokerWorkerId appends Broker", () => {
  assert.equal(childWorkerId("build", 0), "build0000");
  assert.equal(childWorkerId("build", 12), "build0012");
  assert.equal(childWorkerId("build", 12345), "build12345");
  assert.throws(() => childWorkerId("build", -1), RangeError);
  assert.throws(() => childWorkerId("build", 1.5), RangeError);
  assert.equal(brokerWorkerId("build"), "buildBroker");
});

Deno.test("childEnvironment copies the base env and sets prefix and worker id", () => {
  const base = { PATH: "/bin", PERAGO_WORKER_ID: "parent" };
  const env = childEnvironment(base, "tasks/build.ts", 3);
  assert.deepEqual(env, {
    PATH: "/bin",
    PERAGO_WORKER_ID: "build0003",
    PERAGO_WORKER_ID_PREFIX: "build",
  });
  assert.equal(base.PERAGO_WORKER_ID, "parent");
  assert.equal(
    childEnvironment({ [P]: " custom " }, "tasks/build.ts", 1).PERAGO_WORKER_ID,
    "custom0001",
  );
});
