/**
 * `perago start` as a real child process for the runtime and chaos tests: spawn it with its
 * output collected, find its children's pids in the supervisor's log lines, stop it.
 */

import { waitFor } from "../src/util/sleep.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/**
 * A running `perago start`. `await using worker = spawnPeragoStart(...)` kills it (SIGKILL)
 * and waits for its exit when the test's scope ends, however the test ends.
 */
export interface Worker extends AsyncDisposable {
  process: Deno.ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit status once its output is drained. */
  status: Promise<Deno.CommandStatus>;
  /** Pids of every executor started so far. */
  executorPids(): number[];
  /** The latest broker's pid, once started. */
  brokerPid(): number | undefined;
  kill(signal?: Deno.Signal): void;
}

/** Options of {@linkcode spawnPeragoStart}. */
export interface SpawnOptions {
  cwd: string;
  env: Record<string, string>;
  /** Start from an empty environment instead of inheriting this process's. @default false */
  clearEnv?: boolean;
  /** Deno flags before `main.ts`. @default ["-A"] */
  denoFlags?: string[];
}

/** Spawns `deno run <flags> main.ts start <args...>`. */
export function spawnPeragoStart(args: string[], options: SpawnOptions): Worker {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", ...(options.denoFlags ?? ["-A"]), MAIN, "start", ...args],
    cwd: options.cwd,
    env: options.env,
    clearEnv: options.clearEnv ?? false,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const { output, drained } = collectOutput(process);
  const status = drained.then(() => process.status);
  return {
    process,
    output,
    status,
    executorPids: () =>
      [...output().matchAll(/executor \S+ started \(slot \d+, pid (\d+)\)/g)].map((m) =>
        Number(m[1])
      ),
    brokerPid() {
      const all = [...output().matchAll(/broker started \(pid (\d+)\)/g)];
      const last = all[all.length - 1];
      return last ? Number(last[1]) : undefined;
    },
    kill(signal = "SIGTERM") {
      try {
        process.kill(signal);
      } catch {
        // gone
      }
    },
    async [Symbol.asyncDispose]() {
      this.kill("SIGKILL");
      await status;
    },
  };
}

/**
 * Collects a spawned process's piped stdout and stderr as text, interleaved as they arrive;
 * `drained` resolves once both streams end.
 */
export function collectOutput(
  process: Deno.ChildProcess,
): { output(): string; drained: Promise<void> } {
  let text = "";
  const decoder = new TextDecoder();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  };
  const drained = Promise.all([pump(process.stdout), pump(process.stderr)]).then(() => {});
  return { output: () => text, drained };
}

/** The last `lines` lines of `text`, for failure messages. */
export function tail(text: string, lines = 60): string {
  return text.split("\n").slice(-lines).join("\n");
}

/** Stops a worker (SIGTERM) and returns its exit code; SIGKILL after the deadline. */
export async function stopWorker(worker: Worker, timeoutMs = 20_000): Promise<number> {
  worker.kill("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) =>
    timer = setTimeout(() => resolve("late"), timeoutMs)
  );
  const result = await Promise.race([worker.status, late]);
  clearTimeout(timer);
  if (result === "late") {
    worker.kill("SIGKILL");
    await worker.status;
    throw new Error(`worker did not stop within ${timeoutMs} ms:\n${tail(worker.output())}`);
  }
  return result.code;
}

/** Waits until `worker`'s output matches `pattern`, at most `timeoutMs`; `what` names it. */
export async function waitForOutput(
  worker: Pick<Worker, "output">,
  pattern: RegExp,
  options: { what: string; timeoutMs: number },
): Promise<void> {
  await waitFor(() => pattern.test(worker.output()) || undefined, options);
}

/** Waits for the supervisor to be running. */
export async function waitRunning(worker: Worker, timeoutMs = 30_000): Promise<void> {
  await waitForOutput(worker, /supervisor starting -> running/, {
    timeoutMs,
    what: "supervisor running",
  });
}
