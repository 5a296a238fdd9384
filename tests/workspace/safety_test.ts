import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type AttemptOptions,
  type AttemptOutcome,
  runAttempt,
} from "../../src/workspace/attempt.ts";
import { activeOwnerCount } from "../../src/workspace/owners.ts";
import {
  attemptOptions,
  branchNames,
  identity,
  listDir,
  readTree,
  seed,
  type Stack,
  startStack,
} from "./_stack.ts";
import { reader, writer } from "./_tasks.ts";

/** Runs the read-only task over the repository at `ref` (no fence needed: it publishes nothing). */
function runReader(
  stack: Stack,
  ref: string,
  extra: Partial<AttemptOptions> = {},
): Promise<AttemptOutcome> {
  const { loadCurrentAttempt: _fence, ...options } = attemptOptions(stack, reader, ref, {});
  return runAttempt({ ...options, ...extra });
}

const TRAVERSALS = [
  "../escaped.txt",
  "/abs.txt",
  "docs\\..\\..\\bs.txt",
  "docs//x.txt",
  "a/../../up.txt",
];

/** Keys lakeFS accepts that no filesystem path can faithfully hold. */
const UNWRITABLE = [
  "docs/./x.txt",
  "docs/.",
  "docs/\u0001bell.txt",
  "docs/tab\there.txt",
  `docs/${"n".repeat(256)}.txt`,
];

for (const key of [...TRAVERSALS, ...UNWRITABLE, "a\u0000b"]) {
  Deno.test(`download refuses the key ${JSON.stringify(key)} and writes nothing outside`, async () => {
    await using stack = await startStack();
    const owners = activeOwnerCount();
    let ref: string;
    try {
      ref = await seed(stack, { "ok.txt": "fine", [key]: "evil" });
    } catch (error) {
      // The server (like real lakeFS) may refuse a NUL in the path; then there is nothing to
      // defend against, but make sure it was the server that said no.
      assert.ok(key.includes("\u0000"), String(error));
      return;
    }
    await Deno.mkdir(stack.root);
    const before = await listDir(stack.tmp);
    const outcome = await runReader(stack, ref);
    // The key is in the repository at this ref: no retry of the same input can succeed.
    assert.equal(outcome.status, "FAILED_WITH_TERMINAL_ERROR");
    assert.match(outcome.reasonForIncompletion!, /^UnsafePathError: unsafe object key/);
    // Nothing new next to the workspace root, nothing left in it, nothing at "/".
    assert.deepEqual(await listDir(stack.tmp), before);
    assert.deepEqual(await listDir(stack.root), []);
    for (const name of ["escaped.txt", "bs.txt", "up.txt"]) {
      await assert.rejects(() => Deno.lstat(join(stack.tmp, name)), Deno.errors.NotFound);
    }
    await assert.rejects(() => Deno.lstat("/abs.txt"), Deno.errors.NotFound);
    assert.equal(activeOwnerCount(), owners);
  });
}

Deno.test("a symlink made by the task fails staging; its target is never read or uploaded", async () => {
  await using stack = await startStack();
  const a = await seed(stack, { "docs/keep.txt": "keep" });
  const secret = join(stack.tmp, "secret.txt");
  await Deno.writeTextFile(secret, "TOP SECRET");
  stack.server.stats.reset();
  const attempt = identity();
  const outcome = await runAttempt(attemptOptions(stack, writer, a, {
    symlink: { "docs/leak.txt": secret, "docs/dir": stack.tmp },
  }, { attempt }));
  assert.equal(outcome.status, "FAILED");
  assert.match(outcome.reasonForIncompletion!, /^WorkspaceSymlinkError: cannot stage symlink/);
  assert.equal(stack.server.stats.count("uploadObject"), 0);
  assert.equal(stack.server.stats.count("createBranch"), 0);
  assert.deepEqual(await branchNames(stack), ["main"]);
  assert.deepEqual(await readTree(stack, "main"), { "docs/keep.txt": "keep" });
  // Cleanup removed the links, not what they point to.
  assert.equal(await Deno.readTextFile(secret), "TOP SECRET");
  assert.deepEqual(await listDir(stack.root), []);
});

Deno.test("an object named like the marker at the root is refused, never overwrites it", async () => {
  await using stack = await startStack();
  const ref = await seed(stack, { ".perago-attempt.json": '{"owner_token":"forged"}' });
  const outcome = await runReader(stack, ref);
  assert.equal(outcome.status, "FAILED_WITH_TERMINAL_ERROR");
  assert.match(outcome.reasonForIncompletion!, /attempt marker is reserved/);
});

Deno.test("zero-byte folder markers are neither downloaded nor deleted by staging", async () => {
  await using stack = await startStack();
  const a = await seed(stack, { "docs/": "", "docs/sub/": "", "docs/keep.txt": "keep" });
  const outcome = await runAttempt(
    attemptOptions(stack, writer, a, { write: { "docs/new.txt": "new" } }, { ownerWorkerId: "w" }),
  );
  assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
  assert.deepEqual(await readTree(stack, outcome.publishedRef!), {
    "docs/": "",
    "docs/keep.txt": "keep",
    "docs/new.txt": "new",
    "docs/sub/": "",
  });
});

for (const order of [["docs/a", "docs/a/b.txt"], ["docs/a/b.txt", "docs/a"]]) {
  Deno.test(`a key that is a file and a folder at once (${order.join(" + ")}) fails terminally`, async () => {
    await using stack = await startStack();
    const owners = activeOwnerCount();
    const ref = await seed(stack, Object.fromEntries(order.map((key) => [key, key])));
    await Deno.mkdir(stack.root);
    const outcome = await runReader(stack, ref, { syncConcurrency: 1 });
    assert.equal(outcome.status, "FAILED_WITH_TERMINAL_ERROR");
    assert.match(
      outcome.reasonForIncompletion!,
      /^UnsafePathError: unsafe object key "docs\/a\/b.txt": "docs\/a" is also an object/,
    );
    assert.deepEqual(await listDir(stack.root), []);
    assert.equal(activeOwnerCount(), owners);
  });
}
