import assert from "node:assert/strict";
import { join } from "node:path";
import type { LogRecord } from "@logtape/logtape";
import { formatConsoleLine } from "../../src/log/_format.ts";

function record(overrides: Partial<LogRecord> = {}): LogRecord {
  return {
    category: ["perago", "test"],
    level: "info",
    message: ["claimed ", 2, " tasks"],
    rawMessage: "claimed {n} tasks",
    timestamp: new Date(2026, 10, 23, 9, 1, 2, 7).getTime(),
    properties: {},
    ...overrides,
  };
}

Deno.test("formatConsoleLine: HH:MM:SS.mmm LEVEL [worker] message key=value", () => {
  assert.equal(
    formatConsoleLine(
      record({
        properties: {
          n: 2,
          task_id: "t-1",
          retryCount: 0,
          path: "a b.txt",
          empty: "",
          nested: { x: 1 },
        },
      }),
      "build0001",
      [],
    ),
    '09:01:02.007 INFO [build0001] claimed 2 tasks task_id=t-1 retry_count=0 n=2 path="a b.txt" empty="" nested={"x":1}\n',
  );
});

Deno.test("formatConsoleLine: secrets masked, multi-line messages indented", () => {
  const line = formatConsoleLine(
    record({ level: "error", message: ["first\nsecond hunter2"], properties: { note: "hunter2" } }),
    "w",
    ["hunter2"],
  );
  assert.equal(line, "09:01:02.007 ERROR [w] first\n    second *** note=***\n");
});

Deno.test("setupLogging with console: readable lines on stderr, nothing on stdout", async () => {
  const dir = await Deno.makeTempDir({ prefix: "perago-log-console-" });
  try {
    const script = join(dir, "log.ts");
    const setupUrl = new URL("../../src/log/setup.ts", import.meta.url).href;
    const loggerUrl = new URL("../../src/log/logger.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { setupLogging } from ${JSON.stringify(setupUrl)};
import { getLogger } from ${JSON.stringify(loggerUrl)};
const logging = await setupLogging({ logRoot: ${JSON.stringify(dir)}, moduleName: "m",
  workerId: "m0001", maxFileBytes: 1048576, retentionMs: 86400000, secrets: ["pa55word"] });
getLogger("x").info("hello {who}", { who: "world", task_id: "t9", token: "tok" });
getLogger("x").warning("key pa55word");
await logging.dispose();
`,
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", new URL("../../deno.json", import.meta.url).pathname, script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    assert.equal(new TextDecoder().decode(output.stdout), "");
    const lines = stderr.trimEnd().split("\n");
    assert.equal(lines.length, 2, stderr);
    assert.match(
      lines[0]!,
      /^\d\d:\d\d:\d\d\.\d{3} INFO \[m0001\] hello world task_id=t9 who=world token=\*\*\*$/,
    );
    assert.match(lines[1]!, /^\d\d:\d\d:\d\d\.\d{3} WARNING \[m0001\] key \*\*\*$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
