import assert from "node:assert/strict";
import { formatBytes, type ProgressStream, startProgress } from "../../src/cli/_progress.ts";

function fakeStream(terminal: boolean): ProgressStream & { text(): string } {
  let text = "";
  const decoder = new TextDecoder();
  return {
    isTerminal: () => terminal,
    writeSync(bytes) {
      text += decoder.decode(bytes);
      return bytes.length;
    },
    text: () => text,
  };
}

Deno.test("progress: at a terminal, the phase and what moved on one redrawn line; logs above it", () => {
  const stream = fakeStream(true);
  const progress = startProgress("normalize_text", { stream, intervalMs: 60_000 });
  assert.equal(progress.active, true);
  progress.phase("download");
  progress.counts({
    downloadedObjects: 3,
    downloadedBytes: 3 * 1024 * 1024,
    uploadedObjects: 0,
    uploadedBytes: 0,
  });
  progress.phase("stage");
  progress.write(new TextEncoder().encode("12:00:00.000 INFO [x] a log line\n"));
  progress.stop();
  const text = stream.text();
  assert.match(text, /normalize_text: download {2}↓ 0 objects 0 B/);
  assert.match(text, /normalize_text: stage {2}↓ 3 objects 3\.0 MiB {2}↑ 0 staged 0 B/);
  // The log line is written on a cleared line, then the progress line is drawn again.
  const clear = "\r\x1b[2K";
  assert.ok(
    text.includes(`${clear}12:00:00.000 INFO [x] a log line\n${clear}⠋ normalize_text`),
    JSON.stringify(text),
  );
  assert.ok(text.endsWith("\r\x1b[2K"), "the line is cleared at the end");
});

Deno.test("progress: not a terminal, nothing is drawn (logs pass through)", () => {
  const stream = fakeStream(false);
  const progress = startProgress("t", { stream });
  assert.equal(progress.active, false);
  progress.phase("download");
  progress.write(new TextEncoder().encode("line\n"));
  progress.stop();
  assert.equal(stream.text(), "line\n");
});

Deno.test("formatBytes: B, KiB, MiB", () => {
  assert.equal(formatBytes(830), "830 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(50 * 1024 * 1024), "50 MiB");
});

Deno.test("progress: perago run with stderr piped stays quiet (no progress line)", async () => {
  const root = new URL("../../", import.meta.url).pathname;
  const dir = await Deno.makeTempDir({ prefix: "perago-progress-" });
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${root}main.ts`,
        "run",
        `${root}examples/word_count.ts`,
        "--input",
        `${root}examples/inputs/word_count.json`,
      ],
      cwd: dir,
      env: { PERAGO_WORKSPACE_ROOT: `${dir}/ws`, PERAGO_LOG_ROOT: `${dir}/logs`, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    assert.ok(!stderr.includes("\x1b[2K") && !stderr.includes("⠋"), stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
