import assert from "node:assert/strict";
import { join } from "node:path";
import type { z } from "zod";
import normalizeText, {
  MANIFEST_PATH,
  normalizeText as normalize,
} from "../../examples/normalize_text.ts";
import textStats, { countText } from "../../examples/text_stats.ts";
import csvTotals, { TOTALS_FILE, totalsOf } from "../../examples/csv_totals.ts";
import wordCount, { MAX_TEXT_CHARS } from "../../examples/word_count.ts";
import { checkGuardrails } from "../../src/task/check_guardrails.ts";
import {
  isTerminalError,
  PreGuardrailViolation,
  TaskTerminalError,
} from "../../src/task/errors.ts";
import type { TaskContext, TaskDefinition } from "../../src/task/types.ts";
import { createTaskMetrics } from "../../src/task/metrics.ts";

function context(workspace: string | undefined): TaskContext {
  const noop = () => {};
  return {
    workspace,
    signal: new AbortController().signal,
    log: { debug: noop, info: noop, warn: noop, error: noop },
    attempt: {
      workflowInstanceId: "wf",
      taskId: "t",
      retryCount: 0,
      executionId: "e",
      taskDefName: "x",
    },
    metrics: createTaskMetrics("x", {}, noop),
  };
}

/** Runs a task the way an attempt does: params, pre guardrails, run, result, post guardrails. */
async function attempt<P extends z.ZodType, R extends z.ZodType>(
  task: TaskDefinition<P, R>,
  rawParams: unknown,
  dir: string | undefined,
): Promise<z.output<R>> {
  const params = task.params.parse(rawParams);
  if (dir !== undefined) await checkGuardrails(dir, task.workspace!.pre, "pre");
  const result = task.result.parse(await task.run(params, context(dir)));
  if (dir !== undefined) await checkGuardrails(dir, task.workspace!.post, "post");
  return result;
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "perago-examples-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function snapshot(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  const walk = async (relative: string) => {
    for await (const entry of Deno.readDir(join(dir, relative))) {
      const path = relative === "" ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile) files[path] = await Deno.readTextFile(join(dir, path));
    }
  };
  await walk("");
  return files;
}

Deno.test("normalizeText: LF, no trailing whitespace, exactly one final newline", () => {
  assert.equal(normalize("a  \r\nb\t\rc\n\n\n"), "a\nb\nc\n");
  assert.equal(normalize("no newline"), "no newline\n");
  assert.equal(normalize(""), "");
  assert.equal(normalize("\n\n  \n"), "");
  assert.equal(normalize("  lead kept\n"), "  lead kept\n");
  assert.equal(normalize("x\n\n\ny\n"), "x\n\n\ny\n");
});

Deno.test("normalize_text normalises docs/, writes a stable manifest, reruns as a no-op", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(join(dir, "docs/sub"), { recursive: true });
    await Deno.writeTextFile(join(dir, "docs/a.md"), "title  \r\nbody\t\n\n");
    await Deno.writeTextFile(join(dir, "docs/sub/b.txt"), "clean\n");
    await Deno.writeTextFile(join(dir, "docs/.c.txt"), "dot");
    await Deno.writeTextFile(join(dir, "docs/image.bin"), "  keep \r\n");
    await Deno.writeTextFile(join(dir, "outside.md"), "not under the prefix  \n");
    await Deno.symlink(join(dir, "outside.md"), join(dir, "docs/link.md"));

    const result = await attempt(normalizeText, { note: "test" }, dir);
    assert.deepEqual(result, { filesNormalized: 2, filesScanned: 3 });
    const files = await snapshot(dir);
    assert.equal(files["docs/a.md"], "title\nbody\n");
    assert.equal(files["docs/.c.txt"], "dot\n");
    assert.equal(files["docs/sub/b.txt"], "clean\n");
    assert.equal(files["docs/image.bin"], "  keep \r\n");
    assert.equal(files["outside.md"], "not under the prefix  \n");
    const manifest = JSON.parse(files[MANIFEST_PATH]!);
    assert.deepEqual(manifest.files.map((f: { path: string }) => f.path), [
      "docs/.c.txt",
      "docs/a.md",
      "docs/sub/b.txt",
    ]);
    const expectedHash = new Uint8Array(
      await crypto.subtle.digest("SHA-256", new TextEncoder().encode("title\nbody\n")),
    ).toHex();
    assert.deepEqual(manifest.files[1], { path: "docs/a.md", sha256: expectedHash, size: 11 });

    const { mtime } = await Deno.stat(join(dir, MANIFEST_PATH));
    const again = await attempt(normalizeText, {}, dir);
    assert.deepEqual(again, { filesNormalized: 0, filesScanned: 3 });
    assert.deepEqual(await snapshot(dir), files);
    assert.deepEqual((await Deno.stat(join(dir, MANIFEST_PATH))).mtime, mtime);
  });
});

Deno.test("normalize_text: the pre guardrail requires docs/ (terminal)", async () => {
  await withDir(async (dir) => {
    await assert.rejects(attempt(normalizeText, {}, dir), (error: Error) => {
      assert.ok(error instanceof PreGuardrailViolation);
      assert.ok(isTerminalError(error));
      assert.match(error.message, /pre guardrail requireDir\("docs"\) failed: not found/);
      return true;
    });
  });
});

Deno.test("normalize_text params are strict", () => {
  assert.equal(normalizeText.params.safeParse({ nope: 1 }).success, false);
});

Deno.test("text_stats counts lines, words and bytes without writing", async () => {
  assert.deepEqual(countText(new TextEncoder().encode("one two\nthree")), {
    lines: 2,
    words: 3,
    bytes: 13,
  });
  assert.deepEqual(countText(new Uint8Array()), { lines: 0, words: 0, bytes: 0 });
  await withDir(async (dir) => {
    await Deno.mkdir(join(dir, "docs/sub"), { recursive: true });
    await Deno.writeTextFile(join(dir, "docs/a.md"), "hello world\n");
    await Deno.writeTextFile(join(dir, "docs/sub/b.txt"), "é x\ny z\n");
    await Deno.writeTextFile(join(dir, "docs/skip.bin"), "a b c d\n");
    const before = await snapshot(dir);
    assert.equal(textStats.workspace?.readOnly, true);
    const totals = await attempt(textStats, {}, dir);
    assert.deepEqual(totals, { files: 2, lines: 3, words: 6, bytes: 21 });
    const detailed = await attempt(textStats, { perFile: true }, dir);
    assert.deepEqual(detailed.perFile, [
      { path: "docs/a.md", lines: 1, words: 2, bytes: 12 },
      { path: "docs/sub/b.txt", lines: 2, words: 4, bytes: 9 },
    ]);
    assert.deepEqual(await snapshot(dir), before);
  });
});

Deno.test("word_count counts words and characters, terminal error on oversized text", async () => {
  assert.equal(wordCount.workspace, undefined);
  assert.deepEqual(await attempt(wordCount, { text: "  héllo  wörld\n" }, undefined), {
    words: 2,
    chars: 15,
  });
  assert.deepEqual(await attempt(wordCount, { text: "" }, undefined), { words: 0, chars: 0 });
  await assert.rejects(
    attempt(wordCount, { text: "x".repeat(MAX_TEXT_CHARS + 1) }, undefined),
    (error: Error) => error instanceof TaskTerminalError && isTerminalError(error),
  );
  assert.equal(wordCount.params.safeParse({ text: "a", extra: true }).success, false);
});

Deno.test("csv_totals: totalsOf sums numeric columns over a folder's files", () => {
  assert.deepEqual(
    totalsOf([
      { name: "b.csv", text: "x,label,y\r\n1,a,0.1\r\n\r\n2,b,\n" },
      { name: "a.csv", text: "x,label,y\n3,c,0.2\n" },
    ]),
    { files: ["a.csv", "b.csv"], rows: 3, sums: { x: 6, y: 0.3 } },
  );
  assert.deepEqual(totalsOf([{ name: "h.csv", text: "only,header\n" }]), {
    files: ["h.csv"],
    rows: 0,
    sums: {},
  });
});

Deno.test("csv_totals writes _totals.json per CSV folder of its scope, reruns as a no-op", async () => {
  await withDir(async (dir) => {
    // What an attempt narrowed to data/region=east/ downloads: that folder only.
    await Deno.mkdir(join(dir, "data/region=east/day=2"), { recursive: true });
    await Deno.writeTextFile(join(dir, "data/region=east/sales.csv"), "units,price\n3,10\n5,20\n");
    await Deno.writeTextFile(join(dir, "data/region=east/returns.csv"), "units,price\n1,10\n");
    await Deno.writeTextFile(join(dir, "data/region=east/day=2/more.csv"), "units\n4\n");
    await Deno.writeTextFile(join(dir, "data/region=east/notes.txt"), "not a csv\n");
    const result = await attempt(csvTotals, { note: "test" }, dir);
    assert.deepEqual(result, { folders: 2, rows: 4, written: 2 });
    const files = await snapshot(dir);
    assert.deepEqual(JSON.parse(files[`data/region=east/${TOTALS_FILE}`]!), {
      files: ["returns.csv", "sales.csv"],
      rows: 3,
      sums: { price: 40, units: 9 },
    });
    assert.deepEqual(JSON.parse(files[`data/region=east/day=2/${TOTALS_FILE}`]!), {
      files: ["more.csv"],
      rows: 1,
      sums: { units: 4 },
    });
    const again = await attempt(csvTotals, {}, dir);
    assert.deepEqual(again, { folders: 2, rows: 4, written: 0 });
    assert.deepEqual(await snapshot(dir), files);
  });
});

Deno.test("csv_totals: a scope without CSV files fails the pre guardrail (terminal)", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(join(dir, "data/region=north"), { recursive: true });
    await Deno.writeTextFile(join(dir, "data/region=north/readme.txt"), "no data yet\n");
    await assert.rejects(attempt(csvTotals, {}, dir), (error: Error) => {
      assert.ok(error instanceof PreGuardrailViolation);
      assert.ok(isTerminalError(error));
      assert.match(error.message, /requireGlob\("data\/\*\*\/\*\.csv"/);
      return true;
    });
  });
});

Deno.test("sample inputs match the examples' input shape", async () => {
  const tasks: Record<string, TaskDefinition> = {
    normalize_text: normalizeText as TaskDefinition,
    text_stats: textStats as TaskDefinition,
    word_count: wordCount as TaskDefinition,
    csv_totals: csvTotals as TaskDefinition,
  };
  for (const [name, task] of Object.entries(tasks)) {
    const input = JSON.parse(
      await Deno.readTextFile(new URL(`../../examples/inputs/${name}.json`, import.meta.url)),
    );
    const expectedKeys = task.workspace === undefined ? ["params"] : ["workspace", "params"];
    assert.deepEqual(Object.keys(input), expectedKeys, name);
    assert.ok(task.params.safeParse(input.params).success, name);
    if (task.workspace !== undefined) {
      // csv_totals shows the optional per-input scope: one partition under its data/ prefix.
      const scope = name === "csv_totals" ? { prefix: "data/region=east/" } : {};
      assert.deepEqual(input.workspace, {
        repository: "demo",
        branch: "main",
        ref_type: "commit",
        ...scope,
      });
    }
  }
});
