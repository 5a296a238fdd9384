/**
 * perago for Deno beside perago for Python (0.6.1 from PyPI) in one workflow, on the real
 * Conductor OSS and the real lakeFS: Python task -> Deno task -> Python task, each publishing
 * to the same branch. The Python tasks write `refType`; the Deno task takes it, runs in a
 * Conductor task domain (its fences and result work there), and writes `refType` back
 * (`PERAGO_WORKSPACE_REF_STYLE=camel`), which the last Python task accepts.
 *
 * Skipped, with the reason printed, without the real servers (`PERAGO_TEST_CONDUCTOR_URL`,
 * `PERAGO_TEST_LAKEFS_*`) or without perago for Python (`PERAGO_TEST_PERAGO_PYTHON`, else
 * `scripts/perago_python.sh` installs it into `.ci-python/venv`).
 */
import assert from "node:assert/strict";
import { ConductorClient } from "../../src/conductor/client.ts";
import { LakeFsClient } from "../../src/lakefs/client.ts";
import { loadTask } from "../../src/task/loader.ts";
import { buildTaskDef } from "../../src/task/taskdef.ts";
import { waitFor } from "../../src/util/sleep.ts";
import { collectOutput, spawnPeragoStart, stopWorker, tail } from "../_perago_process.ts";
import { peragoPython } from "../_perago_python.ts";
import {
  createTestRepository,
  deleteTestRepository,
  realServers,
  skipNote,
  uniqueSuffix,
} from "../_real_servers.ts";

const MOD = new URL("../../mod.ts", import.meta.url).href;

const servers = realServers();
const python = "skip" in servers ? servers : await peragoPython();
const skipped = skipNote("Python -> Deno -> Python perago chain", servers) ||
  skipNote("Python -> Deno -> Python perago chain", python);

/** A perago for Python workspace task: reads `read` (if given), writes `write`. */
const PY_TASK = (name: string, read: string | undefined, write: string) => `
from pathlib import Path
from pydantic import BaseModel
from perago import WorkspaceSpec, require_file, task

class Params(BaseModel):
    text: str

class Out(BaseModel):
    wrote: str

@task(
    name=${JSON.stringify(name)},
    owner_email="tests@example.com",
    workspace=WorkspaceSpec(prefix="/", pre=[${
  read === undefined ? "" : `require_file(${JSON.stringify(read)})`
}]),
)
def run(workspace: Path, params: Params) -> Out:
    before = ${read === undefined ? '""' : `(workspace / ${JSON.stringify(read)}).read_text()`}
    target = workspace / ${JSON.stringify(write)}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(before + params.text)
    return Out(wrote=${JSON.stringify(write)})
`;

/** The Deno task in the middle: appends to what the first Python task wrote. */
const DENO_TASK = (name: string) => `
import { defineTask, requireFile, z } from ${JSON.stringify(MOD)};
export default defineTask({
  name: ${JSON.stringify(name)},
  ownerEmail: "tests@example.com",
  description: "the Deno link of a Python -> Deno -> Python chain",
  params: z.object({ text: z.string() }),
  result: z.object({ wrote: z.string() }),
  workspace: { prefix: "chain/", pre: [requireFile("chain/py1.txt")] },
  controls: { retry: { count: 0 }, timeout: { responseSeconds: 120 } },
  async run(params, ctx) {
    const text = await Deno.readTextFile(\`\${ctx.workspace}/chain/py1.txt\`);
    await Deno.writeTextFile(\`\${ctx.workspace}/chain/deno.txt\`, text + params.text);
    return { wrote: "chain/deno.txt" };
  },
});
`;

interface Spawned {
  process: Deno.ChildProcess;
  output(): string;
}

/** Runs `args` in a new session (`setsid`), so its whole process group can be killed. */
function spawnSession(
  command: string,
  args: string[],
  options: { cwd: string; env: Record<string, string> },
): Spawned {
  const process = new Deno.Command("setsid", {
    args: [command, ...args],
    cwd: options.cwd,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return { process, output: collectOutput(process).output };
}

async function killSession(spawned: Spawned): Promise<void> {
  try {
    Deno.kill(-spawned.process.pid, "SIGKILL");
  } catch {
    // gone
  }
  await spawned.process.status;
}

Deno.test({
  name: "perago for Python and Deno in one workflow: Python -> Deno (in a domain) -> Python",
  ignore: skipped,
  async fn() {
    if ("skip" in servers || "skip" in python) return;
    const { conductor, lakefs } = servers;
    const run = uniqueSuffix();
    const dir = await Deno.makeTempDir({ prefix: "perago-pychain-" });
    const api = new ConductorClient({ serverUrl: conductor.url, requestTimeoutMs: 15_000 });
    const lakefsClient = new LakeFsClient({
      endpointUrl: lakefs.url,
      accessKeyId: lakefs.accessKeyId,
      secretAccessKey: lakefs.secretAccessKey,
    });
    const repo = await createTestRepository(lakefs, "pychain");
    const sessions: Spawned[] = [];
    const names = { py1: `pychain_first_${run}`, deno: `pychain_deno_${run}` };
    const py2 = `pychain_last_${run}`;
    const domain = `pychain${run}`;
    const serverEnv = {
      CONDUCTOR_SERVER_URL: `${conductor.url.replace(/\/+$/, "").replace(/\/api$/, "")}/api`,
      LAKECTL_SERVER_ENDPOINT_URL: lakefs.url,
      LAKECTL_CREDENTIALS_ACCESS_KEY_ID: lakefs.accessKeyId,
      LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: lakefs.secretAccessKey,
      NO_COLOR: "1",
    };
    const pythonEnv = (label: string) => ({
      ...serverEnv,
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? dir,
      PYTHONPATH: dir,
      PERAGO_WORKSPACE_ROOT: `${dir}/ws-${label}`,
      PERAGO_LOG_ROOT: `${dir}/logs-${label}`,
    });
    try {
      // The three tasks, their TaskDefs and the workflow.
      await Deno.writeTextFile(
        `${dir}/py_first.py`,
        PY_TASK(names.py1, undefined, "chain/py1.txt"),
      );
      await Deno.writeTextFile(
        `${dir}/py_last.py`,
        PY_TASK(py2, "chain/deno.txt", "chain/py2.txt"),
      );
      await Deno.writeTextFile(`${dir}/deno_mid.ts`, DENO_TASK(names.deno));
      for (const module of ["py_first", "py_last"]) {
        const extracted = await new Deno.Command(python.python, {
          args: ["-m", "perago.cli", "extract", module, "-o", `${dir}/${module}.json`],
          cwd: dir,
          env: pythonEnv(module),
          clearEnv: true,
          stdin: "null",
        }).output();
        assert.ok(extracted.success, new TextDecoder().decode(extracted.stderr));
        await api.registerTaskDefs([JSON.parse(await Deno.readTextFile(`${dir}/${module}.json`))]);
      }
      await api.registerTaskDefs([buildTaskDef((await loadTask(`${dir}/deno_mid.ts`)).task)]);
      const workflowName = `pychain_${run}_wf`;
      await api.upsertWorkflowDefs([{
        name: workflowName,
        version: 1,
        schemaVersion: 2,
        ownerEmail: "tests@example.com",
        tasks: [
          {
            name: names.py1,
            taskReferenceName: "py1",
            type: "SIMPLE",
            inputParameters: { workspace: "${workflow.input.workspace}", params: { text: "py" } },
          },
          {
            name: names.deno,
            taskReferenceName: "deno",
            type: "SIMPLE",
            inputParameters: { workspace: "${py1.output.workspace}", params: { text: "+deno" } },
          },
          {
            name: py2,
            taskReferenceName: "py2",
            type: "SIMPLE",
            inputParameters: { workspace: "${deno.output.workspace}", params: { text: "+py" } },
          },
        ],
        outputParameters: { workspace: "${py2.output.workspace}" },
      }]);
      await lakefsClient.uploadObject(
        repo,
        "main",
        "chain/seed.txt",
        () => Promise.resolve(new TextEncoder().encode("seed\n")),
      );
      const seed = await lakefsClient.commit(repo, "main", "seed");

      // The workers: two perago for Python supervisors, one perago for Deno in a domain.
      for (const module of ["py_first", "py_last"]) {
        sessions.push(spawnSession(python.python, [
          "-m",
          "perago.cli",
          "start",
          module,
          "-j",
          "1",
        ], { cwd: dir, env: pythonEnv(module) }));
      }
      const worker = spawnPeragoStart([`${dir}/deno_mid.ts`, "-j", "1"], {
        cwd: dir,
        env: {
          ...serverEnv,
          PERAGO_WORKSPACE_ROOT: `${dir}/ws-deno`,
          PERAGO_LOG_ROOT: `${dir}/logs-deno`,
          PERAGO_WORKER_ID_PREFIX: "denolink",
          PERAGO_TASK_DOMAIN: domain,
          PERAGO_WORKSPACE_REF_STYLE: "camel",
        },
      });
      try {
        const id = await api.startWorkflow(workflowName, {
          workspace: { repository: repo, branch: "main", refType: "commit", ref: seed.id },
        }, { taskToDomain: { [names.deno]: domain } });
        const diagnostics = () =>
          `deno:\n${tail(worker.output())}\n` +
          sessions.map((s, i) => `python ${i}:\n${tail(s.output(), 30)}`).join("\n");
        const workflow = await waitFor(async () => {
          const wf = await api.getWorkflow(id);
          if (wf.status === "RUNNING") return undefined;
          return wf;
        }, { timeoutMs: 240_000, intervalMs: 250, what: `workflow ${id} to finish` })
          .catch((error) => {
            throw new Error(`${error.message}\n${diagnostics()}`);
          });
        assert.equal(
          workflow.status,
          "COMPLETED",
          `${
            JSON.stringify(
              workflow.tasks.map((t) => [t.referenceTaskName, t.status, t.reasonForIncompletion]),
            )
          }\n${diagnostics()}`,
        );
        const [first, middle, last] = workflow.tasks;
        assert.equal(middle?.domain, domain, "the Deno task ran in its domain");
        assert.match(String(middle?.workerId), /^denolink\d{4}$/);
        assert.notEqual(String(first?.workerId), String(middle?.workerId));
        // Each link published on the branch; the Deno link wrote refType for Python.
        const denoOut = middle?.outputData?.workspace as Record<string, unknown>;
        assert.equal(denoOut.refType, "commit");
        assert.equal(denoOut.ref_type, undefined);
        const finalRef = (workflow.output?.workspace as Record<string, string>).ref;
        const head = await lakefsClient.getBranch(repo, "main");
        assert.equal(head.commit_id, finalRef);
        const read = async (path: string) =>
          await new Response(await lakefsClient.getObject(repo, finalRef!, path)).text();
        assert.equal(await read("chain/py1.txt"), "py");
        assert.equal(await read("chain/deno.txt"), "py+deno");
        assert.equal(await read("chain/py2.txt"), "py+deno+py");
        assert.equal(await read("chain/seed.txt"), "seed\n");
        for (const task of [first, middle, last]) assert.equal(task?.status, "COMPLETED");
        assert.equal(await stopWorker(worker), 0, tail(worker.output()));
      } finally {
        worker.kill("SIGKILL");
        await worker.status;
      }
    } finally {
      for (const session of sessions) await killSession(session);
      await deleteTestRepository(lakefs, repo);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
