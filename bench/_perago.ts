/**
 * Runs `perago start` (process mode) as an operator would, against the given servers, and
 * finds its processes (supervisor, broker, executors) through `/proc`.
 *
 * @module
 */
import { join } from "node:path";
import { ROOT } from "./_common.ts";

/** A running `perago start`. */
export interface PeragoProcess {
  readonly child: Deno.ChildProcess;
  /** Pids of the supervisor's descendants by role, read from `/proc`. */
  roles(): Promise<{ supervisor: number; broker: number[]; executor: number[] }>;
  /** SIGTERM (drain), then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number>;
  /** The last lines of its console output. */
  output(): string;
}

/** Options of {@linkcode startPerago}. */
export interface StartPeragoOptions {
  conductorUrl: string;
  lakefsUrl: string;
  accessKeyId: string;
  secretAccessKey: string;
  modules: string[];
  concurrency: number;
  tempDir: string;
  /** More variables for its environment. */
  env?: Record<string, string>;
}

async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  try {
    for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
      const text = await Deno.readTextFile(`/proc/${pid}/task/${task.name}/children`)
        .catch(() => "");
      for (const p of text.trim().split(/\s+/)) if (p !== "") out.push(Number(p));
    }
  } catch { /* gone */ }
  return out;
}

async function cmdline(pid: number): Promise<string[]> {
  const text = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
  return text.split("\0");
}

/** Starts `deno run -A main.ts start <modules> -j N` with a fresh workspace and log root. */
export function startPerago(options: StartPeragoOptions): PeragoProcess {
  const lines: string[] = [];
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(ROOT, "main.ts"),
      "start",
      ...options.modules,
      "-j",
      String(options.concurrency),
    ],
    cwd: options.tempDir,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? options.tempDir,
      ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
      CONDUCTOR_SERVER_URL: options.conductorUrl,
      LAKECTL_SERVER_ENDPOINT_URL: options.lakefsUrl,
      LAKECTL_CREDENTIALS_ACCESS_KEY_ID: options.accessKeyId,
      LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: options.secretAccessKey,
      PERAGO_WORKSPACE_ROOT: join(options.tempDir, "workspaces"),
      PERAGO_LOG_ROOT: join(options.tempDir, "logs"),
      PERAGO_EXECUTION_MODE: "process",
      PERAGO_WORKER_ID_PREFIX: "bench",
      NO_COLOR: "1",
      ...options.env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  for (const stream of [child.stdout, child.stderr]) {
    void (async () => {
      try {
        for await (const text of stream.pipeThrough(new TextDecoderStream())) {
          lines.push(text);
          if (lines.length > 200) lines.splice(0, lines.length - 200);
        }
      } catch { /* closed */ }
    })();
  }
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  return {
    child,
    async roles() {
      const broker: number[] = [];
      const executor: number[] = [];
      const pending = [child.pid];
      while (pending.length > 0) {
        const pid = pending.pop()!;
        for (const c of await childrenOf(pid)) {
          const args = await cmdline(c);
          if (args.includes("__broker")) broker.push(c);
          else if (args.includes("__executor")) executor.push(c);
          pending.push(c);
        }
      }
      return { supervisor: child.pid, broker, executor };
    },
    async stop(graceMs = 20_000) {
      if (!exited) {
        try {
          child.kill("SIGTERM");
        } catch { /* gone */ }
      }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, graceMs);
      const s = await status;
      clearTimeout(timer);
      return s.code;
    },
    output: () => lines.join(""),
  };
}
