/**
 * End-to-end: the README's first command (`deno task demo`) as a user runs it, and the same
 * job against a real Conductor OSS server when PERAGO_TEST_CONDUCTOR_URL names one.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const REAL_CONDUCTOR = Deno.env.get("PERAGO_TEST_CONDUCTOR_URL");

async function runDemo(extraArgs: string[]): Promise<{ code: number; out: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}scripts/demo.ts`, ...extraArgs],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(240_000),
  });
  const output = await child.output();
  const out = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  return { code: output.code, out };
}

function assertDemoOutput(out: string, runs: number) {
  const statuses = [...out.matchAll(/^ {2}status (\w+)$/gm)].map((m) => m[1]);
  assert.deepEqual(statuses, Array(runs).fill("COMPLETED"), out);
  // Each workflow run shows its three tasks, completed on their first attempt.
  for (const ref of ["normalize", "stats", "words"]) {
    const lines = out.split("\n").filter((line) => line.trimStart().startsWith(`${ref} `));
    assert.equal(lines.length, runs, `${ref} lines:\n${out}`);
    for (const line of lines) assert.match(line, /attempt 1 {2}COMPLETED/);
  }
  // The first run changes files and publishes one commit; the second is a no-op.
  assert.match(
    out,
    /normalize +attempt 1 {2}COMPLETED in \d+ ms, 3 files changed, commit [0-9a-f]{12}/,
  );
  const log = out.slice(out.indexOf("commit log of demo/main:"));
  const perago = log.split("\n").filter((line) => /perago: normalize_text/.test(line));
  assert.equal(perago.length, 1, `one published commit expected:\n${log}`);
  assert.match(log, /seed sample files/);
  assert.match(out, /perago start stopped \(exit 0\)/);
  assert.doesNotMatch(out, /error:|Uncaught|^\s+at /im);
}

Deno.test("deno task demo: two workflow runs complete, one commit published, clean exit", async () => {
  const { code, out } = await runDemo(["--runs", "2"]);
  assert.equal(code, 0, out);
  assertDemoOutput(out, 2);
});

Deno.test({
  name: "demo against a real Conductor OSS server",
  ignore: REAL_CONDUCTOR === undefined,
  async fn() {
    const { code, out } = await runDemo(["--runs", "1", "--conductor-url", REAL_CONDUCTOR!]);
    assert.equal(code, 0, out);
    assertDemoOutput(out, 1);
  },
});
