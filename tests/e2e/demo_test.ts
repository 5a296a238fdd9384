/**
 * End-to-end: the README's first command (`deno task demo`) as a user runs it, and the same
 * job against the real Conductor OSS and real lakeFS when `PERAGO_TEST_*` name them (against
 * the real Conductor alone when only it is there).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  deleteTestRepository,
  realConductor,
  realLakeFs,
  skipNote,
  uniqueRepositoryName,
} from "../_real_servers.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

async function runDemo(
  extraArgs: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}scripts/demo.ts`, ...extraArgs],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
    signal: AbortSignal.timeout(240_000),
  });
  const output = await child.output();
  const out = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  return { code: output.code, out };
}

function assertDemoOutput(out: string, runs: number) {
  const statuses = [...out.matchAll(/^ {2}status (\w+)$/gm)].map((m) => m[1]);
  // The chained workflow `runs` times, then the FORK_JOIN of two writers once.
  assert.deepEqual(statuses, Array(runs + 1).fill("COMPLETED"), out);
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
  const log = out.slice(out.search(/commit log of [a-z0-9-]+\/main:/));
  const perago = log.split("\n").filter((line) => /perago: normalize_text/.test(line));
  assert.equal(perago.length, 1, `one published commit expected:\n${log}`);
  assert.match(log, /seed sample files/);
  assertSideBySide(out, log);
  assert.match(out, /perago start stopped \(exit 0\)/);
  assert.doesNotMatch(out, /error:|Uncaught|^\s+at /im);
}

/** The FORK_JOIN part: two writers of disjoint scopes, one branch, one ref, both published. */
function assertSideBySide(out: string, log: string) {
  const from = out.match(
    /FORK_JOIN: csv_totals on .* of [a-z0-9-]+\/main, both from ([0-9a-f]{12})/,
  );
  assert.ok(from, out);
  const commits: Record<string, string> = {};
  const partitions = [["east", "data/region=east/"], ["west", "data/region=west/"]] as const;
  for (const [name, prefix] of partitions) {
    const line = out.match(
      new RegExp(
        `^ {2}${name} +attempt 1 {2}COMPLETED in \\d+ ms, scope ${prefix}, 1 totals written, ` +
          "commit ([0-9a-f]{12})$",
        "m",
      ),
    );
    assert.ok(line, `${name} published on its first attempt:\n${out}`);
    commits[name] = line[1]!;
    assert.match(out, new RegExp(`^ {4}${prefix}_totals\\.json \\{"files":\\[`, "m"));
  }
  assert.notEqual(commits.east, commits.west);
  // One merged onto the input ref, the other onto the first one's commit (the moved head).
  const onRef = out.match(
    /^ {2}publication (\w+): commit ([0-9a-f]{12}), parent (\w{12}) \(the input ref\)$/m,
  );
  const onMoved = out.match(
    /^ {2}publication (\w+): commit ([0-9a-f]{12}), parent (\w{12}) \(the other writer's commit: merged onto the moved head\)$/m,
  );
  assert.ok(onRef && onMoved, out);
  assert.equal(onRef[3], from[1]);
  assert.equal(onMoved[3], onRef[2]);
  assert.equal(new Set([onRef[1], onMoved[1]]).size, 2);
  const totals = log.split("\n").filter((line) => /perago: csv_totals/.test(line));
  assert.equal(totals.length, 2, `two csv_totals commits expected:\n${log}`);
  assert.match(out, /partitions_join +JOIN COMPLETED \(joined (east, west|west, east)\)/);
}

Deno.test("deno task demo: two workflow runs complete, one commit published, two writers side by side, clean exit", async () => {
  const { code, out } = await runDemo(["--runs", "2"]);
  assert.equal(code, 0, out);
  assertDemoOutput(out, 2);
});

const conductor = realConductor();
const lakefs = realLakeFs();

Deno.test({
  name: "demo on the real Conductor OSS and the real lakeFS",
  ignore: skipNote("deno task demo on the real servers", "skip" in conductor ? conductor : lakefs),
  async fn() {
    if ("skip" in conductor || "skip" in lakefs) return;
    const repo = uniqueRepositoryName("demo");
    try {
      const { code, out } = await runDemo(
        [
          "--runs",
          "2",
          "--conductor-url",
          conductor.url,
          "--lakefs-url",
          lakefs.url,
          "--repo",
          repo,
        ],
        {
          LAKECTL_CREDENTIALS_ACCESS_KEY_ID: lakefs.accessKeyId,
          LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: lakefs.secretAccessKey,
        },
      );
      assert.equal(code, 0, out);
      assertDemoOutput(out, 2);
      assert.ok(!out.includes(lakefs.secretAccessKey), "the lakeFS secret must not be printed");
    } finally {
      await deleteTestRepository(lakefs, repo);
    }
  },
});

// With a real Conductor but no real lakeFS, the job still runs on the real Conductor.
Deno.test({
  name: "demo against a real Conductor OSS server (embedded lakeFS)",
  ignore: "skip" in conductor || !("skip" in lakefs),
  async fn() {
    if ("skip" in conductor) return;
    const { code, out } = await runDemo(["--runs", "1", "--conductor-url", conductor.url]);
    assert.equal(code, 0, out);
    assertDemoOutput(out, 1);
  },
});
