/**
 * perago for Python (0.6.1 on PyPI) for the tests that chain Python and Deno perago tasks:
 * `PERAGO_TEST_PERAGO_PYTHON` names an interpreter that has it (`.ci/run` sets it), else
 * `scripts/perago_python.sh` makes (once) a venv under the clone, `.ci-python/venv`, with it
 * from PyPI. Without python3 or PyPI the answer is `{ skip }` with the reason, which the test
 * prints.
 */
import type { Skip } from "./_real_servers.ts";

const SCRIPT = new URL("../scripts/perago_python.sh", import.meta.url).pathname;

/** A Python interpreter with perago for Python installed. */
export interface PeragoPython {
  python: string;
}

let found: Promise<PeragoPython | Skip> | undefined;

/** The interpreter, or why there is none (memoised: the venv is made at most once a run). */
export function peragoPython(): Promise<PeragoPython | Skip> {
  return found ??= locate();
}

async function locate(): Promise<PeragoPython | Skip> {
  const given = Deno.env.get("PERAGO_TEST_PERAGO_PYTHON")?.trim();
  if (given) {
    const check = await run(given, [
      "-c",
      "import importlib.metadata as m; print(m.version('perago'))",
    ]);
    if (!check.ok) {
      return { skip: `PERAGO_TEST_PERAGO_PYTHON=${given} cannot import perago: ${check.err}` };
    }
    return { python: given };
  }
  const made = await run("bash", [SCRIPT]);
  if (!made.ok) {
    return {
      skip: `perago for Python is not installed (${
        made.err || "scripts/perago_python.sh " +
          "failed"
      }); set PERAGO_TEST_PERAGO_PYTHON to a python with perago==0.6.1`,
    };
  }
  return { python: made.out.trim().split("\n").at(-1)! };
}

async function run(
  command: string,
  args: string[],
): Promise<{ ok: boolean; out: string; err: string }> {
  try {
    const output = await new Deno.Command(command, {
      args,
      stdin: "null",
      signal: AbortSignal.timeout(300_000),
    }).output();
    const decoder = new TextDecoder();
    return {
      ok: output.success,
      out: decoder.decode(output.stdout),
      err: decoder.decode(output.stderr).trim().split("\n").at(-1) ?? "",
    };
  } catch (error) {
    return { ok: false, out: "", err: (error as Error).message };
  }
}
