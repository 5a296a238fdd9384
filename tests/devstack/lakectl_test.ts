/**
 * lakeFS's own CLI, lakectl 1.84.0, driving the demo lakeFS through the commands users reach
 * for: repositories, branches, tags and branch protection rules, `fs
 * upload/ls/cat/stat/rm/download`, diff, commit, log, merge, reset, and `local
 * clone/status/commit`. Each command's exit code and key output are
 * checked on the demo server; when a real lakeFS is configured (PERAGO_TEST_LAKEFS_*) the same
 * script runs there too and the two transcripts must match line for line (after masking what
 * differs by nature: ids, dates and times, physical addresses, the repository name and the work
 * dir).
 *
 * lakectl comes from PERAGO_TEST_LAKECTL or ../shared/tools/lakefs/unpack-lakectl.sh; without
 * it the test is skipped with a printed reason.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startLakeFsServer } from "../../src/devstack/lakefs/server.ts";
import {
  type Lakectl,
  realLakectl,
  type RealLakeFs,
  realLakeFs,
  skipNote,
  uniqueRepositoryName,
} from "../_real_servers.ts";

/** One lakectl command: its arguments, the exit code it must end with, text its output has. */
interface Step {
  args: string[];
  code: 0 | 1;
  includes?: string[];
  /** Runs before the command (e.g. edits a cloned directory). */
  before?: (work: string) => Promise<void>;
}

/** The script, with `R` for the repository and `W` for the work directory. */
function script(): Step[] {
  return [
    {
      args: ["repo", "create", "lakefs://R", "local://R"],
      code: 0,
      includes: ["Repository 'R' created", "default branch: main"],
    },
    { args: ["repo", "create", "lakefs://R", "local://R"], code: 1, includes: ["409 Conflict"] },
    {
      args: ["branch", "create", "lakefs://R/dev", "--source", "lakefs://R/main"],
      code: 0,
      includes: ["created branch 'dev'"],
    },
    {
      args: ["branch", "create", "lakefs://R/dev", "--source", "lakefs://R/main"],
      code: 1,
      includes: ["409 Conflict"],
    },
    { args: ["branch", "list", "lakefs://R"], code: 0, includes: ["dev\t", "main\t"] },
    {
      args: ["fs", "upload", "lakefs://R/dev/a.txt", "-s", "W/a.txt"],
      code: 0,
      includes: ["Path: a.txt", "Size: 6 bytes", "Checksum: b1946ac92492d2347c6235b4d2611184"],
    },
    {
      args: ["fs", "upload", "lakefs://R/dev/data/", "-s", "W/dir", "--recursive"],
      code: 0,
      includes: ["Uploaded: 2"],
    },
    { args: ["fs", "ls", "lakefs://R/dev/"], code: 0, includes: ["a.txt", "data/"] },
    {
      args: ["fs", "ls", "lakefs://R/dev/", "--recursive"],
      code: 0,
      includes: ["a.txt", "data/b.txt", "data/sub/c.txt"],
    },
    { args: ["fs", "cat", "lakefs://R/dev/a.txt"], code: 0, includes: ["hello"] },
    {
      args: ["fs", "stat", "lakefs://R/dev/data/sub/c.txt"],
      code: 0,
      includes: ["Path: data/sub/c.txt", "Size: 5 bytes"],
    },
    { args: ["fs", "cat", "lakefs://R/dev/missing.txt"], code: 1, includes: ["404 Not Found"] },
    {
      args: ["diff", "lakefs://R/dev"],
      code: 0,
      includes: ["+ added a.txt", "+ added data/b.txt", "+ added data/sub/c.txt"],
    },
    {
      args: ["commit", "lakefs://R/dev", "-m", "first", "--meta", "k=v"],
      code: 0,
      includes: ['Commit for branch "dev" completed.', "Message: first"],
    },
    {
      args: ["commit", "lakefs://R/dev", "-m", "empty"],
      code: 1,
      includes: ["commit: no changes", "400 Bad Request"],
    },
    {
      args: ["log", "lakefs://R/dev", "--amount", "5"],
      code: 0,
      includes: ["first", "k                  = v", "Repository created"],
    },
    {
      args: ["diff", "lakefs://R/main", "lakefs://R/dev"],
      code: 0,
      includes: ["+ added a.txt", "+ added data/sub/c.txt"],
    },
    {
      args: ["merge", "lakefs://R/dev", "lakefs://R/main"],
      code: 0,
      includes: ['Merged "dev" into "main"'],
    },
    {
      args: ["log", "lakefs://R/main", "--amount", "1"],
      code: 0,
      includes: ["Merge 'dev' into 'main'", ".lakefs.merge.strategy"],
    },
    {
      args: ["tag", "create", "lakefs://R/v1", "lakefs://R/main"],
      code: 0,
      includes: ["Created tag 'v1'"],
    },
    {
      args: ["tag", "create", "lakefs://R/v1", "lakefs://R/main"],
      code: 1,
      includes: ["tag already exists", "409 Conflict"],
    },
    { args: ["tag", "list", "lakefs://R"], code: 0, includes: ["v1\t"] },
    { args: ["tag", "show", "lakefs://R/v1"], code: 0, includes: ["v1"] },
    { args: ["fs", "cat", "lakefs://R/v1/data/b.txt"], code: 0, includes: ["world"] },
    {
      args: ["branch", "create", "lakefs://R/fromtag", "--source", "lakefs://R/v1"],
      code: 0,
      includes: ["created branch 'fromtag'"],
    },
    { args: ["diff", "lakefs://R/v1", "lakefs://R/fromtag"], code: 0 },
    { args: ["tag", "delete", "lakefs://R/v1", "--yes"], code: 0 },
    { args: ["tag", "show", "lakefs://R/v1"], code: 1, includes: ["404 Not Found"] },
    // (Whether a write is refused right after a rule is added is not compared: lakeFS caches a
    // repository's rules, so on the real server it takes effect with a delay.)
    { args: ["branch-protect", "add", "lakefs://R", "fromtag"], code: 0 },
    { args: ["branch-protect", "list", "lakefs://R"], code: 0, includes: ["fromtag"] },
    { args: ["branch-protect", "delete", "lakefs://R", "fromtag"], code: 0 },
    { args: ["branch-protect", "list", "lakefs://R"], code: 0 },
    { args: ["fs", "rm", "lakefs://R/dev/a.txt"], code: 0 },
    { args: ["diff", "lakefs://R/dev"], code: 0, includes: ["- removed a.txt"] },
    { args: ["branch", "reset", "lakefs://R/dev", "--yes"], code: 0 },
    { args: ["fs", "cat", "lakefs://R/dev/a.txt"], code: 0, includes: ["hello"] },
    {
      args: ["branch", "delete", "lakefs://R/main", "--yes"],
      code: 1,
      includes: ["cannot delete repository default branch", "403 Forbidden"],
    },
    {
      args: ["fs", "download", "lakefs://R/main/data/", "W/download", "--recursive"],
      code: 0,
      includes: ["Downloaded: 2"],
    },
    {
      args: ["local", "clone", "lakefs://R/main/data/", "W/clone"],
      code: 0,
      includes: ["Successfully cloned", "Downloaded: 2"],
    },
    {
      args: ["local", "status", "W/clone"],
      code: 0,
      includes: ["added", "new.txt", "modified", "sub/c.txt", "removed", "b.txt"],
      before: async (work) => {
        await Deno.writeTextFile(join(work, "clone/new.txt"), "new\n");
        await Deno.writeTextFile(join(work, "clone/sub/c.txt"), "changed\n");
        await Deno.remove(join(work, "clone/b.txt"));
      },
    },
    {
      args: ["local", "commit", "W/clone", "-m", "local change"],
      code: 0,
      includes: ["Uploaded: 2", "Removed: 1", 'Commit for branch "main" completed.'],
    },
    { args: ["fs", "cat", "lakefs://R/main/data/sub/c.txt"], code: 0, includes: ["changed"] },
    {
      args: ["fs", "ls", "lakefs://R/main/data/", "--recursive"],
      code: 0,
      includes: ["data/new.txt", "data/sub/c.txt"],
    },
    { args: ["local", "pull", "W/clone"], code: 0, includes: ["No changes"] },
    { args: ["branch", "delete", "lakefs://R/dev", "--yes"], code: 0 },
    { args: ["repo", "delete", "lakefs://R", "--yes"], code: 0, includes: ["deleted"] },
  ];
}

/** Runs the script against `target` with repository `repo`; returns the masked transcript. */
async function runScript(lakectl: Lakectl, target: RealLakeFs, repo: string): Promise<string[]> {
  const work = await Deno.makeTempDir({ prefix: "perago-lakectl-" });
  try {
    await Deno.mkdir(join(work, "dir/sub"), { recursive: true });
    await Deno.mkdir(join(work, "home"));
    await Deno.writeTextFile(join(work, "a.txt"), "hello\n");
    await Deno.writeTextFile(join(work, "dir/b.txt"), "world\n");
    await Deno.writeTextFile(join(work, "dir/sub/c.txt"), "deep\n");
    const transcript: string[] = [];
    for (const step of script()) {
      await step.before?.(work);
      const args = step.args.map((arg) =>
        arg.replaceAll("lakefs://R", `lakefs://${repo}`).replace("local://R", `local://${repo}`)
          .replace(/^W\//, `${work}/`)
      );
      const output = await new Deno.Command(lakectl.path, {
        args,
        cwd: work,
        clearEnv: true,
        env: {
          HOME: join(work, "home"),
          PATH: "/usr/bin:/bin",
          LAKECTL_SERVER_ENDPOINT_URL: target.url,
          LAKECTL_CREDENTIALS_ACCESS_KEY_ID: target.accessKeyId,
          LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: target.secretAccessKey,
        },
        stdin: "null",
        signal: AbortSignal.timeout(60_000),
      }).output();
      const text = new TextDecoder().decode(output.stdout) +
        new TextDecoder().decode(output.stderr);
      const masked = mask(text, repo, work);
      const shown = `lakectl ${step.args.join(" ")}`;
      assert.equal(output.code, step.code, `${shown} exited ${output.code}:\n${masked}`);
      for (const part of step.includes ?? []) {
        assert.ok(
          masked.includes(part),
          `${shown}: expected ${JSON.stringify(part)} in:\n${masked}`,
        );
      }
      transcript.push(`$ ${shown}`, ...masked.split("\n"), `exit ${output.code}`);
    }
    assert.equal(await Deno.readTextFile(join(work, "download/sub/c.txt")), "deep\n");
    assert.equal(await Deno.readTextFile(join(work, "download/b.txt")), "world\n");
    return transcript;
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/** The output with what differs between runs and servers by nature replaced by names. */
function mask(text: string, repo: string, work: string): string {
  return text
    .replaceAll(work, "W")
    .replaceAll(repo, "R")
    .replace(/\b[0-9a-f]{64}\b/g, "<commit>")
    .replace(/\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4} [A-Z]+/g, "<date>")
    .replace(/^timestamp: \d+$/gm, "timestamp: <epoch>")
    .replace(/::lakefs::client-mtime = \d+/g, "::lakefs::client-mtime = <epoch>")
    .replace(/^Physical Address: .*$/gm, "Physical Address: <address>");
}

const lakectl = realLakectl();
const real = realLakeFs();
skipNote("lakectl against the demo lakeFS", lakectl);
skipNote("lakectl against the real lakeFS, side by side", real);

Deno.test({
  name: "lakectl 1.84.0 against the demo lakeFS: the common commands, exit codes and output" +
    ("skip" in real ? "" : " (the same transcript as the real lakeFS)"),
  ignore: "skip" in lakectl,
  fn: async () => {
    const tool = lakectl as Lakectl;
    const repo = uniqueRepositoryName("lakectl");
    const demo = await startLakeFsServer({
      accessKeyId: "AKIAIOSFOLKFSSAMPLES",
      secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    });
    let demoTranscript: string[];
    try {
      demoTranscript = await runScript(tool, {
        url: demo.url,
        accessKeyId: "AKIAIOSFOLKFSSAMPLES",
        secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
      }, repo);
    } finally {
      await demo.close();
    }
    if ("skip" in real) return;
    const realTranscript = await runScript(tool, real, repo);
    assert.deepEqual(demoTranscript, realTranscript);
  },
});
