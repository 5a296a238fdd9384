/**
 * Runs the real Conductor OSS server for `perago dev --conductor oss` through
 * `scripts/conductor_oss.sh` (a Spring Boot jar from Maven Central on a private PostgreSQL;
 * needs Java 17, and Maven once to fetch the jar). A server the script reports already
 * running is used and left running; one this call starts is stopped by `close()`.
 *
 * Needs `--allow-run` and `--allow-read` (the script) and `--allow-net` (loopback).
 *
 * @module
 */

/** The script, beside this module in a source checkout. */
export const CONDUCTOR_OSS_SCRIPT = new URL("../../scripts/conductor_oss.sh", import.meta.url);

/** A real Conductor OSS in use. */
export interface ConductorOssHandle {
  /** Server URL without `/api`, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  /** Whether this call started it (and `close()` stops it). */
  readonly started: boolean;
  close(): Promise<void>;
}

/** Conductor OSS could not be started; the message says why and what to do. */
export class ConductorOssError extends Error {
  override name = "ConductorOssError";
}

async function run(
  script: string,
  command: "url" | "start" | "stop",
  signal?: AbortSignal,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(script, {
    args: [command],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(signal ? { signal } : {}),
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout).trim(),
    stderr: decoder.decode(output.stderr).trim(),
  };
}

/**
 * Uses the Conductor OSS the script reports running, or starts one (the first start fetches
 * the jar and can take minutes). `onProgress` gets a line before a cold start.
 */
export async function startConductorOss(options: {
  script?: string;
  signal?: AbortSignal;
  onProgress?: (line: string) => void;
} = {}): Promise<ConductorOssHandle> {
  const script = options.script ??
    (CONDUCTOR_OSS_SCRIPT.protocol === "file:" ? CONDUCTOR_OSS_SCRIPT.pathname : "");
  try {
    if (script === "" || !(await Deno.stat(script)).isFile) throw new Deno.errors.NotFound();
  } catch {
    throw new ConductorOssError(
      `scripts/conductor_oss.sh not found${script ? ` at ${script}` : ""}: --conductor oss ` +
        "runs from a source checkout (deno task dev -- --conductor oss)",
    );
  }
  const running = await run(script, "url", options.signal);
  if (running.code === 0 && /^https?:\/\//.test(running.stdout)) {
    return { url: running.stdout, started: false, close: () => Promise.resolve() };
  }
  options.onProgress?.(
    "starting Conductor OSS (scripts/conductor_oss.sh start; the first start fetches the jar)",
  );
  let started: Awaited<ReturnType<typeof run>>;
  try {
    started = await run(script, "start", options.signal);
  } catch (error) {
    // Aborted mid-start: the server may be coming up in the background; stop it.
    await run(script, "stop").catch(() => {});
    throw error;
  }
  const url = started.stdout.split("\n").at(-1) ?? "";
  if (started.code !== 0 || !/^https?:\/\//.test(url)) {
    const reason = started.stderr.split("\n").filter((line) => line !== "").slice(-5).join("\n");
    throw new ConductorOssError(
      started.code === 3
        ? `Conductor OSS cannot run here: ${reason}`
        : `Conductor OSS did not start (scripts/conductor_oss.sh start exited ${started.code}):` +
          `\n${reason}`,
    );
  }
  let closing: Promise<void> | undefined;
  return {
    url,
    started: true,
    close() {
      closing ??= run(script, "stop").then(() => {});
      return closing;
    },
  };
}
