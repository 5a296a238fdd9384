import assert from "node:assert/strict";
import { join } from "node:path";
import {
  executorDirs,
  executorInit,
  noopExecutorCommand,
  startExecutor,
  writeNoopTask,
} from "./_executor_process.ts";

const decoder = new TextDecoder();

/** Every line of the files under `dir`, recursively. */
async function linesUnder(dir: string): Promise<string[]> {
  const lines: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) lines.push(...await linesUnder(path));
    else if (entry.isFile) {
      lines.push(...(await Deno.readTextFile(path)).split("\n").filter((line) => line !== ""));
    }
  }
  return lines;
}

Deno.test("executor: a process-mode executor has logged nothing when it says ready (an idle executor's first log line costs it memory; the supervisor logs its readiness), and logs when the supervisor goes away", async () => {
  const dir = await Deno.makeTempDir({ prefix: "perago-executor-idle-" });
  try {
    const { ws, logs } = await executorDirs(dir);
    const task = join(dir, "idle_task.ts");
    await writeNoopTask(task, "idle_noop");
    // The command line the supervisor would run, with its flags and permissions.
    const command = noopExecutorCommand(ws, logs, task);
    const { child, writer } = await startExecutor(
      command,
      executorInit({ workerId: "idle0", task, ws, logs, moduleName: "idle_task" }),
    );
    let stdout = "";
    for await (const chunk of child.stdout) {
      stdout += decoder.decode(chunk);
      if (/"type":"(ready|fatal)"/.test(stdout)) break;
    }
    assert.match(stdout, /"type":"ready"/);
    assert.deepEqual(await linesUnder(logs), [], "log lines before the first task");
    await writer.close();
    const status = await child.status;
    const stderr = decoder.decode(await new Response(child.stderr).arrayBuffer());
    assert.equal(status.code, 2, `exits 2 when the supervisor goes away; stderr: ${stderr}`);
    // The logging was set up all along: its warning reached the file and the console.
    const lines = await linesUnder(logs);
    assert.ok(lines.some((line) => line.includes("the supervisor went away")), lines.join("\n"));
    assert.match(stderr, /the supervisor went away/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
