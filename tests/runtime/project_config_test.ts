/**
 * A task project that runs perago with its own `deno.json` (`deno run -A --config deno.json
 * <perago>/main.ts start ...`, as `perago init`'s scaffold does) and whose task imports names
 * only that config maps: a project-local module (`greet` -> `./lib/greet.ts`, which imports a
 * sibling) and an npm package under a project-only alias. The executors must resolve them as
 * the supervisor did, in either execution mode, and still never read the project's `.env`
 * beside that config.
 */
import assert from "node:assert/strict";
import { spawnPeragoStart, stopWorker, type Worker } from "../_perago_process.ts";
import { type Stack, startStack } from "./_stack.ts";

const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** perago's own npm imports, which perago's sources import by bare name (as `perago init` pins them). */
async function peragoNpmImports(): Promise<Record<string, string>> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)) as {
    imports: Record<string, string>;
  };
  return Object.fromEntries(
    Object.entries(config.imports).filter(([, target]) => target.startsWith("npm:")),
  );
}

/** Writes the project beside the stack: deno.json, lib/greet.ts, tasks/hello.ts. */
async function writeProject(stack: Stack): Promise<{ dir: string; task: string }> {
  const dir = `${stack.dir}/project`;
  await Deno.mkdir(`${dir}/lib`, { recursive: true });
  await Deno.mkdir(`${dir}/tasks`, { recursive: true });
  // Where an operator keeps secrets; the settings themselves come from the environment here.
  await Deno.writeTextFile(`${dir}/.env`, "# CONDUCTOR_AUTH_SECRET=s3cr3t\n");
  const picomatch = (await peragoNpmImports())["picomatch"];
  assert.ok(picomatch, "perago's deno.json maps picomatch");
  await Deno.writeTextFile(
    `${dir}/deno.json`,
    JSON.stringify({
      imports: {
        ...await peragoNpmImports(),
        "perago": `${ROOT}/mod.ts`,
        "greet": "./lib/greet.ts",
        // An npm package under a name only this project maps.
        "project-glob": picomatch,
      },
      unstable: ["worker-options"],
    }),
  );
  await Deno.writeTextFile(
    `${dir}/lib/greet.ts`,
    'import { plus } from "./_arith.ts";\nexport const add = (a: number, b: number) => plus(a, b);\n',
  );
  await Deno.writeTextFile(
    `${dir}/lib/_arith.ts`,
    "export const plus = (a: number, b: number) => a + b;\n",
  );
  // The same name, params and result as the stack's registered probe task and workflow.
  const task = `${dir}/tasks/hello.ts`;
  await Deno.writeTextFile(
    task,
    `import { defineTask, z } from "perago";
import { add } from "greet";
import glob from "project-glob";
export default defineTask({
  name: "${stack.taskName}",
  ownerEmail: "tests@example.com",
  description: "imports project-only names",
  params: z.object({ a: z.number(), b: z.number(), read: z.string().optional() }),
  result: z.object({ sum: z.number() }),
  controls: {
    retry: { count: 0, logic: "FIXED", delaySeconds: 0 },
    timeout: { responseSeconds: 60, seconds: 0 },
  },
  async run(p) {
    if (!glob.isMatch("a.ts", "*.ts")) throw new Error("project-glob did not load");
    if (p.read) await Deno.readTextFile(p.read);
    return { sum: add(p.a, p.b) };
  },
});
`,
  );
  return { dir, task };
}

async function runInProject(modeArgs: string[]): Promise<void> {
  await using stack = await startStack();
  const project = await writeProject(stack);
  await using worker: Worker = spawnPeragoStart([project.task, ...modeArgs], {
    cwd: project.dir,
    env: stack.env,
    denoFlags: ["-A", "--config", "deno.json"],
  });
  const id = await stack.startWorkflow({ a: 20, b: 22 });
  const wf = await stack.waitWorkflow(id, "COMPLETED", 30_000).catch((error: Error) => {
    throw new Error(`${error.message}\n${worker.output()}`);
  });
  assert.deepEqual(wf.output, { sum: 42 });
  // The config's directory is not granted as a whole: its .env stays unreadable.
  const denied = await stack.startWorkflow({ a: 1, b: 1, read: `${project.dir}/.env` });
  const failed = await stack.waitWorkflow(denied, "FAILED", 30_000);
  const reasons = failed.tasks.map((t) => String(t.reasonForIncompletion)).join("\n");
  assert.match(reasons, /NotCapable|Requires read access/);
  assert.equal(await stopWorker(worker), 0, worker.output());
}

Deno.test("project config: process-mode executors run with the project's --config (import map, npm alias)", async () => {
  await runInProject([]);
});

Deno.test("project config: thread-mode executors import the project's mapped modules", async () => {
  await runInProject(["--execution-mode", "thread"]);
});
