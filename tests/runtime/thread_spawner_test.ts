import assert from "node:assert/strict";
import {
  postBatch,
  type ToWorkerEnvelope,
  workerOptionsEnabled,
  workerPermissions,
} from "../../src/runtime/thread_spawner.ts";

const MAIN = "file:///opt/perago/main.ts";
const configs = (files: Record<string, string>) => (path: string) => files[path];

Deno.test("thread spawner: --unstable-worker-options is found on the command line or in the config", () => {
  const base = { standalone: false, mainModule: MAIN, readConfig: configs({}) };
  assert.equal(
    workerOptionsEnabled({
      ...base,
      argv: ["deno", "run", "-A", "--unstable-worker-options", "/opt/perago/main.ts", "start"],
    }),
    true,
  );
  // After the main module, it is the program's own argument, not Deno's.
  assert.equal(
    workerOptionsEnabled({
      ...base,
      argv: ["deno", "run", "-A", "/opt/perago/main.ts", "--unstable-worker-options"],
    }),
    false,
  );
  const withUnstable = '{ "unstable": ["kv", "worker-options"] }';
  assert.equal(
    workerOptionsEnabled({
      ...base,
      argv: ["deno", "run", "-A", "/opt/perago/main.ts"],
      readConfig: configs({ "/opt/deno.jsonc": withUnstable }),
    }),
    true,
    "nearest config above the main module",
  );
  assert.equal(
    workerOptionsEnabled({
      ...base,
      argv: ["deno", "run", "-A", "/opt/perago/main.ts"],
      readConfig: configs({ "/opt/perago/deno.json": "{}", "/opt/deno.json": withUnstable }),
    }),
    false,
    "only the nearest config counts",
  );
  assert.equal(
    workerOptionsEnabled({
      ...base,
      argv: ["deno", "run", "--config", "/etc/p.json", "-A", "/opt/perago/main.ts"],
      readConfig: configs({ "/etc/p.json": withUnstable, "/opt/perago/deno.json": "{}" }),
    }),
    true,
    "--config wins",
  );
  assert.equal(
    workerOptionsEnabled({
      ...base,
      argv: ["deno", "run", "--no-config", "-A", "/opt/perago/main.ts"],
      readConfig: configs({ "/opt/perago/deno.json": withUnstable }),
    }),
    false,
  );
  assert.equal(workerOptionsEnabled({ ...base, argv: undefined }), undefined, "cannot tell");
  assert.equal(workerOptionsEnabled({ ...base, standalone: true, argv: [] }), true);
});

Deno.test("thread spawner: worker permissions are exactly the lists; no env, run, ffi, sys, import", () => {
  assert.deepEqual(workerPermissions({ read: ["/w", "/l"], write: ["/w"], net: ["lake:8000"] }), {
    read: ["/w", "/l"],
    write: ["/w"],
    net: ["lake:8000"],
    env: false,
    run: false,
    ffi: false,
    sys: false,
    import: false,
  });
});

Deno.test("thread spawner: a batch that cannot be cloned is posted message by message", () => {
  const posted: ToWorkerEnvelope[] = [];
  const unsent: unknown[] = [];
  const post = (envelope: ToWorkerEnvelope) => {
    structuredClone(envelope); // throws for a function, as postMessage does
    posted.push(envelope);
  };
  postBatch(post, [{ type: "drain" }], (m) => unsent.push(m));
  assert.deepEqual(posted, [{ kind: "messages", messages: [{ type: "drain" }] }]);
  posted.length = 0;
  const bad = { type: "bad", f: () => {} };
  postBatch(post, [{ type: "a" }, bad, { type: "b" }], (m) => unsent.push(m));
  assert.deepEqual(posted, [
    { kind: "messages", messages: [{ type: "a" }] },
    { kind: "messages", messages: [{ type: "b" }] },
  ]);
  assert.deepEqual(unsent, [bad]);
});
