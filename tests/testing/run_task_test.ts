import assert from "node:assert/strict";
import { join } from "node:path";
import { defineTask, requireFile, z } from "../../mod.ts";
import { runTask } from "../../testing.ts";
import { counter, reader, writer } from "../workspace/_tasks.ts";

const BASE = { "docs/keep.txt": "keep\n", "docs/a.txt": "alpha\n" };

Deno.test("runTask: a writable task's adds, changes and removes come back sorted; read shows the branch after", async () => {
  const run = await runTask(writer, {
    files: { ...BASE, "docs/old.txt": "old\n" },
    params: {
      write: { "docs/z.txt": "zed\n", "docs/sub/b.txt": "bee\n", "docs/a.txt": "ALPHA\n" },
      remove: ["docs/old.txt"],
    },
  });
  assert.equal(run.status, "COMPLETED", run.reason);
  assert.equal(run.reason, undefined);
  assert.deepEqual(run.result, { edits: 4 });
  assert.deepEqual(run.changes, {
    added: ["docs/sub/b.txt", "docs/z.txt"],
    changed: ["docs/a.txt"],
    removed: ["docs/old.txt"],
  });
  assert.equal(run.read("docs/a.txt"), "ALPHA\n");
  assert.equal(run.read("docs/old.txt"), undefined);
  assert.deepEqual(run.paths(), ["docs/a.txt", "docs/keep.txt", "docs/sub/b.txt", "docs/z.txt"]);
  const workspace = run.output?.workspace as Record<string, unknown>;
  assert.equal(workspace.ref_type, "commit");
  assert.match(String(workspace.ref), /^[0-9a-f]{64}$/);
});

Deno.test("runTask: no change publishes nothing and reports no changes", async () => {
  const run = await runTask(writer, { files: BASE, params: {} });
  assert.equal(run.status, "COMPLETED", run.reason);
  assert.deepEqual(run.changes, { added: [], changed: [], removed: [] });
  assert.equal(run.read("docs/a.txt"), "alpha\n");
});

Deno.test("runTask: bytes go in and come out unchanged", async () => {
  const bytes = new Uint8Array([0, 255, 10, 13, 128]);
  const run = await runTask(writer, { files: { ...BASE, "docs/blob.bin": bytes } });
  assert.equal(run.status, "COMPLETED", run.reason);
  assert.deepEqual(run.readBytes("docs/blob.bin"), bytes);
});

Deno.test("runTask: a failing pre guardrail is FAILED_WITH_TERMINAL_ERROR", async () => {
  const run = await runTask(writer, { files: {}, params: {} });
  assert.equal(run.status, "FAILED_WITH_TERMINAL_ERROR");
  assert.match(run.reason!, /^PreGuardrailViolation: pre guardrail requireDir\("docs"\)/);
  assert.equal(run.result, undefined);
  assert.deepEqual(run.paths(), []);
});

Deno.test("runTask: a failing post guardrail is FAILED and publishes nothing", async () => {
  const run = await runTask(writer, {
    files: BASE,
    params: { remove: ["docs/keep.txt"], write: { "docs/new.txt": "new" } },
  });
  assert.equal(run.status, "FAILED");
  assert.match(run.reason!, /^PostGuardrailViolation: /);
  assert.equal(run.read("docs/keep.txt"), "keep\n");
  assert.equal(run.read("docs/new.txt"), undefined);
});

Deno.test("runTask: TaskTerminalError is terminal, other errors FAILED; the reason is cut", async () => {
  const terminal = await runTask(writer, { files: BASE, params: { fail: "bad", terminal: true } });
  assert.equal(terminal.status, "FAILED_WITH_TERMINAL_ERROR");
  assert.equal(terminal.reason, "TaskTerminalError: bad");
  const plain = await runTask(writer, { files: BASE, params: { fail: "x".repeat(900) } });
  assert.equal(plain.status, "FAILED");
  assert.equal(plain.reason, `Error: ${"x".repeat(493)}`);
  const short = await runTask(counter, { params: { text: "throw" }, failureReasonMaxLength: 12 });
  assert.equal(short.reason, "RangeError: ");
});

Deno.test("runTask: params and result are validated as in production", async () => {
  const badParams = await runTask(writer, {
    files: BASE,
    params: { unknown: 1 } as unknown as Record<string, never>,
  });
  assert.equal(badParams.status, "FAILED");
  assert.match(badParams.reason!, /^TaskInputError: invalid params for task "writer"/);
  const badResult = await runTask(writer, { files: BASE, params: { badResult: true } });
  assert.equal(badResult.status, "FAILED");
  assert.match(badResult.reason!, /^TaskResultError: /);
});

Deno.test("runTask: a read-only task reports no changes, and fails when it writes", async () => {
  const writes = await runTask(reader, { files: { "a.txt": "a", "docs/b.txt": "b" } });
  assert.equal(writes.status, "FAILED");
  assert.match(
    writes.reason!,
    /^ReadOnlyWorkspaceError: read-only task "reader" changed its workspace \(\+scribble\.txt\)/,
  );
  assert.deepEqual(writes.changes, { added: [], changed: [], removed: [] });
  assert.deepEqual(writes.paths(), ["a.txt", "docs/b.txt"]);

  const quiet = defineTask({
    name: "quiet_reader",
    ownerEmail: "tests@example.com",
    description: "reads",
    params: z.object({}),
    result: z.object({ text: z.string() }),
    workspace: { prefix: "docs/", readOnly: true },
    async run(_params, ctx) {
      return { text: await Deno.readTextFile(join(ctx.workspace!, "docs/b.txt")) };
    },
  });
  const reads = await runTask(quiet, { files: { "docs/b.txt": "b" } });
  assert.equal(reads.status, "COMPLETED", reads.reason);
  assert.deepEqual(reads.result, { text: "b" });
  assert.deepEqual(reads.changes, { added: [], changed: [], removed: [] });
});

Deno.test("runTask: a workspace-free task takes params only", async () => {
  const run = await runTask(counter, { params: { text: "one two three" } });
  assert.equal(run.status, "COMPLETED", run.reason);
  assert.deepEqual(run.result, { words: 3 });
  assert.deepEqual(run.output, { result: { words: 3 } });
  assert.equal(run.read("anything"), undefined);
  await assert.rejects(
    () => runTask(counter, { files: { "a.txt": "a" }, params: { text: "" } }),
    (error: Error) => error instanceof TypeError && /takes params only/.test(error.message),
  );
});

Deno.test("runTask: files outside the prefix, unsafe paths and non-tasks are refused", async () => {
  await assert.rejects(
    () => runTask(writer, { files: { ...BASE, "other/x.txt": "x" } }),
    /runTask: file "other\/x.txt" is outside the prefix "docs\/" of task "writer"/,
  );
  await assert.rejects(
    () => runTask(writer, { files: { "docs/../etc/passwd": "x" } }),
    /runTask: unsafe object key "docs\/..\/etc\/passwd"/,
  );
  await assert.rejects(
    () => runTask({ name: "fake" } as unknown as typeof writer),
    /runTask: the first argument must be a task made by defineTask/,
  );
});

Deno.test("runTask: the attempt's ids reach ctx.attempt", async () => {
  const seen: unknown[] = [];
  const probe = defineTask({
    name: "attempt_probe",
    ownerEmail: "tests@example.com",
    description: "records its attempt",
    params: z.object({}),
    result: z.object({}),
    run(_params, ctx) {
      seen.push(ctx.attempt);
      return {};
    },
  });
  await runTask(probe, { attempt: { retryCount: 2, taskId: "t-9" } });
  const attempt = seen[0] as Record<string, unknown>;
  assert.equal(attempt.retryCount, 2);
  assert.equal(attempt.taskId, "t-9");
  assert.equal(attempt.workflowInstanceId, "test-workflow");
  assert.equal(attempt.taskDefName, "attempt_probe");
});

Deno.test("runTask: the temporary directory is gone afterwards, also when the task throws", async () => {
  const dirs: string[] = [];
  const keeper = defineTask({
    name: "dir_keeper",
    ownerEmail: "tests@example.com",
    description: "remembers its directory",
    params: z.object({ fail: z.boolean() }),
    result: z.object({}),
    workspace: { prefix: "docs/", post: [requireFile("docs/a.txt")] },
    async run({ fail }, ctx) {
      dirs.push(ctx.workspace!);
      await Deno.writeTextFile(join(ctx.workspace!, "docs/extra.txt"), "x");
      if (fail) throw new Error("boom");
      return {};
    },
  });
  assert.equal(
    (await runTask(keeper, { files: BASE, params: { fail: false } })).status,
    "COMPLETED",
  );
  assert.equal((await runTask(keeper, { files: BASE, params: { fail: true } })).status, "FAILED");
  assert.equal(dirs.length, 2);
  for (const dir of dirs) {
    // The attempt directory and the private root above it are both removed.
    await assert.rejects(() => Deno.lstat(dir), Deno.errors.NotFound);
    await assert.rejects(() => Deno.lstat(join(dir, "..")), Deno.errors.NotFound);
  }
});

Deno.test("runTask: a cancelled attempt is FAILED and cleaned up", async () => {
  const controller = new AbortController();
  controller.abort(new Error("test cancelled"));
  const run = await runTask(writer, { files: BASE, signal: controller.signal });
  assert.equal(run.status, "FAILED");
  assert.match(run.reason!, /test cancelled/);
});

Deno.test({
  name: "runTask: needs no network, environment or subprocess permission",
  permissions: {
    read: true,
    write: true,
    net: false,
    env: false,
    run: false,
    ffi: false,
    sys: false,
    import: false,
  },
  async fn() {
    assert.equal((await Deno.permissions.query({ name: "net" })).state, "prompt");
    // The sandbox is real: a fetch and an environment read are refused in here.
    await assert.rejects(() => fetch("http://127.0.0.1:8080/"), Deno.errors.NotCapable);
    assert.throws(() => Deno.env.get("HOME"), Deno.errors.NotCapable);
    const run = await runTask(writer, {
      files: BASE,
      params: { write: { "docs/a.txt": "changed\n" } },
    });
    assert.equal(run.status, "COMPLETED", run.reason);
    assert.deepEqual(run.changes.changed, ["docs/a.txt"]);
  },
});

Deno.test("runTask: prefix narrows the scope as workspace.prefix does; outside the task's prefix is terminal", async () => {
  const partition = defineTask({
    name: "partition_writer",
    ownerEmail: "tests@example.com",
    description: "lists and extends its partition",
    params: z.object({ escape: z.boolean().default(false) }),
    result: z.object({ seen: z.array(z.string()) }),
    workspace: { prefix: "data/" },
    async run({ escape }, ctx) {
      const seen: string[] = [];
      for await (const entry of Deno.readDir(join(ctx.workspace!, "data"))) seen.push(entry.name);
      await Deno.mkdir(join(ctx.workspace!, "data/p1"), { recursive: true });
      await Deno.writeTextFile(join(ctx.workspace!, "data/p1/new.txt"), "new");
      if (escape) {
        await Deno.mkdir(join(ctx.workspace!, "data/p2"), { recursive: true });
        await Deno.writeTextFile(join(ctx.workspace!, "data/p2/x.txt"), "x");
      }
      return { seen: seen.sort() };
    },
  });
  const files = { "data/p1/a.txt": "a", "data/p2/b.txt": "b" };
  const run = await runTask(partition, { files, prefix: "data/p1/" });
  assert.equal(run.status, "COMPLETED", run.reason);
  assert.deepEqual(run.result, { seen: ["p1"] }); // only the partition was downloaded
  assert.deepEqual(run.changes.added, ["data/p1/new.txt"]);
  assert.deepEqual(run.paths(), ["data/p1/a.txt", "data/p1/new.txt", "data/p2/b.txt"]);

  const escaped = await runTask(partition, { files, prefix: "data/p1/", params: { escape: true } });
  assert.notEqual(escaped.status, "COMPLETED");
  assert.match(escaped.reason!, /data\/p2\/x\.txt/);
  assert.equal(escaped.read("data/p1/new.txt"), undefined);

  const outside = await runTask(partition, { files, prefix: "docs/" });
  assert.equal(outside.status, "FAILED_WITH_TERMINAL_ERROR");
  assert.match(outside.reason!, /^WorkspaceScopeError: .*is not under the task's prefix "data\/"/);
  await assert.rejects(
    () => runTask(counter, { params: { text: "" }, prefix: "x/" }),
    /takes no prefix/,
  );
});
