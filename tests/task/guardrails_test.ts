import assert from "node:assert/strict";
import { join } from "node:path";
import { ATTEMPT_MARKER, checkGuardrails } from "../../src/task/check_guardrails.ts";
import {
  GuardrailViolation,
  isTerminalError,
  PostGuardrailViolation,
  PreGuardrailViolation,
  TaskDefinitionError,
} from "../../src/task/errors.ts";
import { forbidGlob, requireDir, requireFile, requireGlob } from "../../src/task/guardrails.ts";
import type { Guardrail } from "../../src/task/types.ts";

Deno.test("guardrail builders return frozen, normalised values", () => {
  assert.deepEqual(requireFile("./docs//a.txt"), { kind: "requireFile", path: "docs/a.txt" });
  assert.deepEqual(requireDir("docs/"), { kind: "requireDir", path: "docs" });
  assert.deepEqual(requireGlob("out/*.csv"), {
    kind: "requireGlob",
    pattern: "out/*.csv",
    min: 1,
    max: undefined,
  });
  assert.deepEqual(requireGlob("**/*.md", { min: 0, max: 3 }), {
    kind: "requireGlob",
    pattern: "**/*.md",
    min: 0,
    max: 3,
  });
  assert.deepEqual(forbidGlob("**/*.tmp"), { kind: "forbidGlob", pattern: "**/*.tmp" });
  assert.ok(Object.isFrozen(requireFile("a")));
});

Deno.test("guardrail builders reject bad arguments at call time", () => {
  const cases: [() => unknown, RegExp][] = [
    [() => requireFile("/etc/passwd"), /requireFile: "\/etc\/passwd" is absolute/],
    [() => requireFile("../x"), /requireFile: .*"\.\." segment/],
    [() => requireFile(""), /requireFile: .*names no path/],
    [() => requireDir("a\\b"), /requireDir: .*backslash/],
    [() => requireGlob("/abs/*"), /requireGlob: .*absolute/],
    [() => requireGlob("**/../*"), /requireGlob: .*"\.\." segment/],
    [() => forbidGlob("a\0"), /forbidGlob: .*NUL/],
    [
      () => requireGlob("*", { min: -1 }),
      /requireGlob\(options\.min\): must be a non-negative integer/,
    ],
    [() => requireGlob("*", { min: 1.5 }), /options\.min/],
    [() => requireGlob("*", { max: -2 }), /requireGlob\(options\.max\)/],
    [() => requireGlob("*", { min: 3, max: 2 }), /min 3 is greater than max 2/],
    [() => requireGlob("*", { mn: 1 } as never), /unknown option "mn"/],
  ];
  for (const [build, message] of cases) {
    assert.throws(build, (error: Error) => {
      assert.ok(error instanceof TaskDefinitionError, String(error));
      assert.match(error.message, message);
      return true;
    });
  }
});

async function withTree(
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "perago-guardrails-" });
  try {
    await Deno.mkdir(join(dir, "docs/sub"), { recursive: true });
    await Deno.mkdir(join(dir, "out"));
    await Deno.mkdir(join(dir, "elsewhere"));
    await Deno.writeTextFile(join(dir, "docs/a.md"), "a\n");
    await Deno.writeTextFile(join(dir, "docs/sub/b.md"), "b\n");
    await Deno.writeTextFile(join(dir, "docs/.hidden.md"), "h\n");
    await Deno.writeTextFile(join(dir, "out/one.csv"), "1\n");
    await Deno.writeTextFile(join(dir, "elsewhere/real.csv"), "r\n");
    await Deno.writeTextFile(join(dir, "elsewhere/inner.txt"), "i\n");
    await Deno.writeTextFile(join(dir, ATTEMPT_MARKER), "{}");
    // Symlinks: to a file (a .csv name) and to a directory. Neither may count or be followed.
    await Deno.symlink(join(dir, "elsewhere/real.csv"), join(dir, "out/link.csv"));
    await Deno.symlink(join(dir, "elsewhere"), join(dir, "linkdir"));
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function failure(
  dir: string,
  guardrails: Guardrail[],
  phase: "pre" | "post",
): Promise<GuardrailViolation> {
  try {
    await checkGuardrails(dir, guardrails, phase);
  } catch (error) {
    assert.ok(error instanceof GuardrailViolation, String(error));
    return error;
  }
  assert.fail(`expected ${phase} guardrails to fail: ${JSON.stringify(guardrails)}`);
}

Deno.test("checkGuardrails passes a tree that satisfies every guardrail", async () => {
  await withTree(async (dir) => {
    await checkGuardrails(dir, [
      requireDir("docs"),
      requireDir("docs/sub"),
      requireFile("docs/a.md"),
      requireGlob("docs/**/*.md", { min: 3, max: 3 }),
      requireGlob("out/*.csv", { min: 1, max: 1 }),
      forbidGlob("**/*.tmp"),
      forbidGlob("linkdir/**"),
    ], "post");
    await checkGuardrails(dir, [], "pre");
  });
});

Deno.test("checkGuardrails: a failed pre guardrail is a terminal PreGuardrailViolation", async () => {
  await withTree(async (dir) => {
    const error = await failure(dir, [requireFile("docs/missing.md")], "pre");
    assert.ok(error instanceof PreGuardrailViolation);
    assert.equal(error.name, "PreGuardrailViolation");
    assert.equal(error.phase, "pre");
    assert.ok(isTerminalError(error));
    assert.equal(error.message, 'pre guardrail requireFile("docs/missing.md") failed: not found');
  });
});

Deno.test("checkGuardrails: a failed post guardrail is a retryable PostGuardrailViolation", async () => {
  await withTree(async (dir) => {
    const error = await failure(dir, [requireGlob("out/*.json")], "post");
    assert.ok(error instanceof PostGuardrailViolation);
    assert.equal(error.name, "PostGuardrailViolation");
    assert.ok(!isTerminalError(error));
    assert.equal(
      error.message,
      'post guardrail requireGlob("out/*.json", min 1) failed: 0 matches',
    );
  });
});

Deno.test("checkGuardrails: a symlink never counts as a file, a directory or a glob match", async () => {
  await withTree(async (dir) => {
    // out/link.csv points at a real file, but only out/one.csv counts.
    let error = await failure(dir, [requireGlob("out/*.csv", { min: 2 })], "post");
    assert.equal(
      error.message,
      'post guardrail requireGlob("out/*.csv", min 2) failed: 1 match (out/one.csv)',
    );
    error = await failure(dir, [requireFile("out/link.csv")], "post");
    assert.match(error.message, /requireFile\("out\/link.csv"\) failed: found a symlink instead/);
    error = await failure(dir, [requireDir("linkdir")], "post");
    assert.match(error.message, /found a symlink instead/);
    // Not followed: nothing below linkdir exists for the checker.
    error = await failure(dir, [requireFile("linkdir/inner.txt")], "post");
    assert.match(error.message, /not found \("linkdir" is a symlink, which is never followed\)/);
    await checkGuardrails(dir, [forbidGlob("out/link.csv"), forbidGlob("linkdir/*")], "post");
  });
});

Deno.test("checkGuardrails reports the wrong kind, max overruns and forbidden matches", async () => {
  await withTree(async (dir) => {
    let error = await failure(dir, [requireFile("docs")], "post");
    assert.match(error.message, /requireFile\("docs"\) failed: found a directory instead/);
    error = await failure(dir, [requireDir("docs/a.md")], "post");
    assert.match(error.message, /found a regular file instead/);
    error = await failure(dir, [requireGlob("docs/**/*.md", { min: 0, max: 2 })], "post");
    assert.equal(
      error.message,
      'post guardrail requireGlob("docs/**/*.md", min 0, max 2) failed: 3 matches (docs/.hidden.md, docs/a.md, docs/sub/b.md)',
    );
    error = await failure(dir, [forbidGlob("**/.*")], "post");
    assert.equal(
      error.message,
      'post guardrail forbidGlob("**/.*") failed: 1 match (docs/.hidden.md)',
    );
  });
});

Deno.test("checkGuardrails ignores the attempt marker and reports every failure", async () => {
  await withTree(async (dir) => {
    await checkGuardrails(dir, [forbidGlob("*.json")], "post");
    const error = await failure(dir, [
      requireFile(ATTEMPT_MARKER),
      requireDir("docs"),
      forbidGlob("docs/*.md"),
    ], "post");
    assert.deepEqual(error.failures, [
      `post guardrail requireFile("${ATTEMPT_MARKER}") failed: not found`,
      'post guardrail forbidGlob("docs/*.md") failed: 2 matches (docs/.hidden.md, docs/a.md)',
    ]);
    assert.equal(error.message, error.failures.join("; "));
  });
});

Deno.test("checkGuardrails lists at most five matches", async () => {
  const dir = await Deno.makeTempDir({ prefix: "perago-guardrails-" });
  try {
    for (let i = 0; i < 7; i++) await Deno.writeTextFile(join(dir, `f${i}.tmp`), "");
    const error = await failure(dir, [forbidGlob("*.tmp")], "post");
    assert.equal(
      error.message,
      'post guardrail forbidGlob("*.tmp") failed: 7 matches (f0.tmp, f1.tmp, f2.tmp, f3.tmp, f4.tmp, ... 2 more)',
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkGuardrails honours an aborted signal", async () => {
  await withTree(async (dir) => {
    const controller = new AbortController();
    controller.abort(new Error("stop"));
    await assert.rejects(
      checkGuardrails(dir, [requireDir("docs")], "pre", { signal: controller.signal }),
      /stop/,
    );
  });
});
