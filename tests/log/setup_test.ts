import assert from "node:assert/strict";
import { join } from "node:path";
import {
  fileTimestamp,
  logFilePath,
  mayNameRedactedField,
  rotatedLogPath,
  safeSegment,
  setupLogging,
} from "../../src/log/setup.ts";
import { getLogger, taskLogger, withLogContext } from "../../src/log/logger.ts";

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "perago-log-test-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function readLines(path: string): Promise<Record<string, unknown>[]> {
  const text = await Deno.readTextFile(path);
  return text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line));
}

const BASE = {
  moduleName: "normalize_text",
  workerId: "normalizetext0001",
  pid: 4321,
  startedAt: new Date("2026-11-23T09:01:02.345Z"),
  maxFileBytes: 1024 * 1024,
  retentionMs: 86_400_000,
  console: false,
} as const;

Deno.test("logFilePath: <root>/<module>/worker_id=<id>/pid=<pid>__started=<ts>.jsonl", () => {
  assert.equal(fileTimestamp(new Date("2026-11-23T09:01:02.345Z")), "20261123T090102Z");
  assert.equal(
    logFilePath({ logRoot: "/logs", ...BASE }),
    "/logs/normalize_text/worker_id=normalizetext0001/pid=4321__started=20261123T090102Z.jsonl",
  );
  assert.equal(safeSegment("examples/a b.ts"), "examples_a_b.ts");
  assert.equal(safeSegment(".."), "__");
  assert.equal(safeSegment(""), "_");
  assert.equal(
    logFilePath({ logRoot: "/logs", ...BASE, moduleName: "../x", workerId: "a/../b" }),
    "/logs/.._x/worker_id=a_.._b/pid=4321__started=20261123T090102Z.jsonl",
  );
});

Deno.test("setupLogging: a record with task ids is one JSON line with the fields", async () => {
  await withDir(async (dir) => {
    const logging = await setupLogging({ logRoot: dir, ...BASE });
    try {
      assert.equal(logging.logFile, logFilePath({ logRoot: dir, ...BASE }));
      const log = getLogger("attempt");
      log.with({
        workflow_instance_id: "wf-1",
        taskId: "task-1",
        execution_id: "exec-1",
        retryCount: 2,
        task_def_name: "normalize_text",
      }).info("uploaded {count} files", { count: 3, bucket: { name: "b" } });
      log.debug("not logged at info level");
      log.warn("no ids");
    } finally {
      await logging.dispose();
    }
    const lines = await readLines(logging.logFile);
    assert.equal(lines.length, 2);
    const [first, second] = lines;
    assert.deepEqual(Object.keys(first!), [
      "ts",
      "level",
      "message",
      "category",
      "worker_id",
      "workflow_instance_id",
      "task_id",
      "execution_id",
      "retry_count",
      "task_def_name",
      "extra",
    ]);
    assert.equal(first!.level, "INFO");
    assert.equal(first!.message, "uploaded 3 files");
    assert.equal(first!.category, "perago.attempt");
    assert.equal(first!.worker_id, "normalizetext0001");
    assert.equal(first!.workflow_instance_id, "wf-1");
    assert.equal(first!.task_id, "task-1");
    assert.equal(first!.execution_id, "exec-1");
    assert.equal(first!.retry_count, 2);
    assert.equal(first!.task_def_name, "normalize_text");
    assert.deepEqual(first!.extra, { count: 3, bucket: { name: "b" } });
    assert.ok(Math.abs(Date.parse(String(first!.ts)) - Date.now()) < 60_000);
    assert.equal(second!.level, "WARNING");
    assert.equal("task_id" in second!, false);
    assert.deepEqual(second!.extra, {});
  });
});

Deno.test("setupLogging: errors, cycles and context are serialised", async () => {
  await withDir(async (dir) => {
    const logging = await setupLogging({ logRoot: dir, ...BASE, level: "debug" });
    try {
      const cyclic: Record<string, unknown> = { n: 1n };
      cyclic.self = cyclic;
      await withLogContext({ task_id: "ctx-task" }, async () => {
        await Promise.resolve();
        getLogger().error("failed: {error}", {
          error: new TypeError("bad", { cause: new Error("root") }),
          cyclic,
        });
      });
      getLogger().debug("after context");
    } finally {
      await logging.dispose();
    }
    const [line, after] = await readLines(logging.logFile);
    assert.equal(line!.message, "failed: TypeError: bad");
    assert.equal(line!.task_id, "ctx-task");
    const extra = line!.extra as Record<string, Record<string, unknown>>;
    assert.equal(extra.error!.name, "TypeError");
    assert.equal(extra.error!.message, "bad");
    assert.equal((extra.error!.cause as Record<string, unknown>).message, "root");
    assert.deepEqual(extra.cyclic, { n: "1", self: "[Circular]" });
    assert.equal(after!.level, "DEBUG");
    assert.equal("task_id" in after!, false);
  });
});

Deno.test("setupLogging: secrets never reach the file, in messages or nested properties", async () => {
  const secret = 'S3cr3t"\\value';
  const other = "second-secret-abc";
  await withDir(async (dir) => {
    const logging = await setupLogging({
      logRoot: dir,
      ...BASE,
      secrets: [secret, other, ""],
    });
    try {
      const log = getLogger("lakefs");
      log.info(`connecting with ${secret}`);
      log.info("template {value}", { value: `x${secret}y` });
      log.warn("nested", {
        request: { headers: [{ note: `Basic ${other}` }] },
        [`key-${other}`]: 1,
        error: new Error(`auth failed for ${secret}`),
      });
      log.info("by field", {
        password: "pw-plain",
        nested: { apiKey: "k-plain", authorization: "Bearer t-plain" },
        taskToken: "tok-plain",
        path: "data/a.csv",
      });
      taskLogger(log).error(`task says ${other}`, { detail: secret });
    } finally {
      await logging.dispose();
    }
    const text = await Deno.readTextFile(logging.logFile);
    for (const value of [secret, JSON.stringify(secret).slice(1, -1), other]) {
      assert.equal(text.includes(value), false, `found ${value}`);
    }
    for (const value of ["pw-plain", "k-plain", "t-plain", "tok-plain"]) {
      assert.equal(text.includes(value), false, `found ${value}`);
    }
    const lines = await readLines(logging.logFile);
    assert.equal(lines.length, 5);
    assert.equal(lines[0]!.message, "connecting with ***");
    assert.equal(lines[1]!.message, "template x***y");
    assert.deepEqual(lines[3]!.extra, {
      password: "***",
      nested: { apiKey: "***", authorization: "***" },
      taskToken: "***",
      path: "data/a.csv",
    });
    assert.equal(lines[4]!.message, "task says ***");
  });
});

Deno.test("mayNameRedactedField: only records naming no secret field (at any depth, or in a placeholder) skip the redaction", () => {
  const record = (properties: Record<string, unknown>, rawMessage = "attempt {attemptId}") => ({
    category: ["perago"],
    level: "info" as const,
    message: [],
    rawMessage,
    timestamp: 0,
    properties,
  });
  assert.equal(mayNameRedactedField(record({ attemptId: "a1", taskId: "t1", n: 3 })), false);
  assert.equal(
    mayNameRedactedField(record({ request: { headers: { Authorization: "x" } } })),
    true,
  );
  assert.equal(mayNameRedactedField(record({ list: [{ ok: 1 }, { apiKey: "k" }] })), true);
  assert.equal(mayNameRedactedField(record({}, "sent {session.token}")), true);
  let deep: Record<string, unknown> = { leaf: 1 };
  for (let i = 0; i < 12; i++) deep = { next: deep };
  assert.equal(mayNameRedactedField(record(deep)), true, "too deep to tell: redacted");
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  assert.equal(mayNameRedactedField(record(cycle)), true, "a cycle ends the quick walk");
});

Deno.test("setupLogging: rotates at the size; rotated files are <name>.<started>.jsonl, none dropped", async () => {
  await withDir(async (dir) => {
    const logging = await setupLogging({ logRoot: dir, ...BASE, maxFileBytes: 2048 });
    try {
      const log = getLogger("rotation");
      for (let i = 0; i < 60; i++) log.info("line {i} {pad}", { i, pad: "x".repeat(100) });
    } finally {
      await logging.dispose();
    }
    const folder = join(logging.logFile, "..");
    const base = logging.logFile.slice(folder.length + 1);
    const names = (await Array.fromAsync(Deno.readDir(folder))).map((entry) => entry.name).sort();
    assert.ok(names.length > 1, `expected rotated files, got ${names}`);
    const root = base.slice(0, -".jsonl".length).replace(/\./g, "\\.");
    for (const name of names) {
      assert.match(
        name,
        new RegExp(
          `^${root}(\\.\\d{4}-\\d{2}-\\d{2}_\\d{2}-\\d{2}-\\d{2}_\\d{6}(\\.\\d+)?)?\\.jsonl$`,
        ),
      );
    }
    let total = 0;
    for (const name of names) {
      const info = await Deno.stat(join(folder, name));
      assert.ok(info.size <= 2048, `${name} is ${info.size} bytes`);
      total += (await readLines(join(folder, name))).length;
    }
    assert.equal(total, 60);
    // The newest lines are in the current file.
    const current = await readLines(logging.logFile);
    assert.equal(current.at(-1)!.message, `line 59 ${"x".repeat(100)}`);
  });
});

Deno.test("rotatedLogPath: the start time before .jsonl (UTC, microseconds), a counter when taken", () => {
  const started = new Date("2026-12-02T05:09:58.123Z");
  const taken = new Set<string>();
  const path = "/logs/m/worker_id=w/pid=1__started=20261202T050958Z.jsonl";
  const first = rotatedLogPath(path, started, (p) => taken.has(p));
  assert.equal(
    first,
    "/logs/m/worker_id=w/pid=1__started=20261202T050958Z.2026-12-02_05-09-58_123000.jsonl",
  );
  taken.add(first);
  const second = rotatedLogPath(path, started, (p) => taken.has(p));
  assert.equal(
    second,
    "/logs/m/worker_id=w/pid=1__started=20261202T050958Z.2026-12-02_05-09-58_123000.2.jsonl",
  );
  taken.add(second);
  assert.match(rotatedLogPath(path, started, (p) => taken.has(p)), /_123000\.3\.jsonl$/);
});

Deno.test("setupLogging: retention removes old log files only", async () => {
  await withDir(async (dir) => {
    const moduleDir = join(dir, "normalize_text");
    const otherWorker = join(moduleDir, "worker_id=old");
    await Deno.mkdir(otherWorker, { recursive: true });
    const old = new Date(Date.now() - 3 * 86_400_000);
    const files = {
      oldLog: join(otherWorker, "pid=1__started=20200101T000000Z.jsonl"),
      oldRotated: join(otherWorker, "pid=1__started=20200101T000000Z.jsonl.3"),
      newLog: join(otherWorker, "pid=2__started=20260101T000000Z.jsonl"),
      oldOther: join(otherWorker, "notes.txt"),
      oldLookalike: join(otherWorker, "x.jsonl.bak"),
      outside: join(dir, "other_module", "pid=1__started=20200101T000000Z.jsonl"),
    };
    await Deno.mkdir(join(dir, "other_module"));
    for (const path of Object.values(files)) await Deno.writeTextFile(path, "{}\n");
    for (const key of ["oldLog", "oldRotated", "oldOther", "oldLookalike", "outside"] as const) {
      await Deno.utime(files[key], old, old);
    }
    const logging = await setupLogging({ logRoot: dir, ...BASE, retentionMs: 86_400_000 });
    await logging.dispose();
    const exists = async (path: string) => {
      try {
        await Deno.lstat(path);
        return true;
      } catch {
        return false;
      }
    };
    assert.equal(await exists(files.oldLog), false);
    assert.equal(await exists(files.oldRotated), false);
    assert.equal(await exists(files.newLog), true);
    assert.equal(await exists(files.oldOther), true);
    assert.equal(await exists(files.oldLookalike), true);
    assert.equal(await exists(files.outside), true);
    assert.equal(await exists(otherWorker), true);
  });
});

Deno.test("setupLogging: dispose flushes and closes; idempotent; logging after it is a no-op", async () => {
  await withDir(async (dir) => {
    const logging = await setupLogging({ logRoot: dir, ...BASE });
    for (let i = 0; i < 100; i++) getLogger("flush").info("record {i}", { i });
    await logging.dispose();
    await logging.dispose();
    getLogger("flush").info("after dispose");
    const lines = await readLines(logging.logFile);
    assert.equal(lines.length, 100);
    assert.equal(lines[99]!.message, "record 99");
  });
});

Deno.test("setupLogging: a second setup replaces the first; the old handle leaves it alone", async () => {
  await withDir(async (dir) => {
    const first = await setupLogging({ logRoot: dir, ...BASE, workerId: "w1" });
    const second = await setupLogging({ logRoot: dir, ...BASE, workerId: "w2" });
    try {
      await first.dispose();
      getLogger().info("to second");
    } finally {
      await second.dispose();
    }
    assert.deepEqual(await readLines(first.logFile), []);
    const lines = await readLines(second.logFile);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.worker_id, "w2");
  });
});

Deno.test("setupLogging rejects non-positive sizes and retention", async () => {
  await assert.rejects(
    () => setupLogging({ logRoot: "/nonexistent", ...BASE, maxFileBytes: 0 }),
    RangeError,
  );
  await assert.rejects(
    () => setupLogging({ logRoot: "/nonexistent", ...BASE, retentionMs: 0 }),
    RangeError,
  );
});

Deno.test("taskLogger: plain-text messages with braces kept, properties recorded", async () => {
  await withDir(async (dir) => {
    const logging = await setupLogging({ logRoot: dir, ...BASE, level: "debug" });
    try {
      const log = taskLogger(getLogger("task").with({ task_id: "t-7" }));
      log.debug("set {x} and {{y}}", { files: 3 });
      log.info("info");
      log.warn("warn");
      log.error("error {", { e: 1 });
    } finally {
      await logging.dispose();
    }
    const lines = await readLines(logging.logFile);
    assert.deepEqual(
      lines.map((line) => [line.level, line.message, line.task_id, line.category]),
      [
        ["DEBUG", "set {x} and {{y}}", "t-7", "perago.task"],
        ["INFO", "info", "t-7", "perago.task"],
        ["WARNING", "warn", "t-7", "perago.task"],
        ["ERROR", "error {", "t-7", "perago.task"],
      ],
    );
    assert.deepEqual(lines[0]!.extra, { files: 3 });
  });
});
