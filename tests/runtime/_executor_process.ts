/**
 * A real executor process for tests, as the supervisor starts one: the no-op task module it
 * serves, its command line, and the `init` message the supervisor sends it first.
 *
 * @module
 */
import { join } from "node:path";
import { childCommand } from "../../src/runtime/permissions.ts";

/** This repository's root (the directory holding `main.ts` and `mod.ts`). */
export const SOURCE = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** Writes, at `path`, a task module defining a task `name` that returns its input `n`. */
export async function writeNoopTask(path: string, name: string): Promise<void> {
  await Deno.writeTextFile(
    path,
    `import { defineTask, z } from ${JSON.stringify(`${SOURCE}/mod.ts`)};
    export default defineTask({ name: ${JSON.stringify(name)}, ownerEmail: "tests@example.com",
      description: "returns its input", params: z.object({ n: z.number().int() }),
      result: z.object({ n: z.number().int() }), run: ({ n }) => ({ n }) });`,
  );
}

/**
 * The command line the supervisor runs for a workspace-free executor serving `task` (its
 * flags and permissions), from source.
 */
export function noopExecutorCommand(
  ws: string,
  logs: string,
  task: string,
): { command: string; args: string[]; env: Record<string, string> } {
  const command = childCommand({
    role: "executor",
    workspaceRoot: ws,
    logRoot: logs,
    modules: [task],
    conductorUrl: "http://127.0.0.1:1/api",
    lakefsUrl: undefined,
    standalone: false,
    configFile: `${SOURCE}/deno.json`,
  });
  return { command: command.command, args: [...command.args], env: { ...command.env } };
}

/** Options of {@linkcode executorInit}. */
export interface ExecutorInitOptions {
  workerId: string;
  /** The task module's path. */
  task: string;
  ws: string;
  logs: string;
  /** The log file's module name. */
  moduleName: string;
  /** More fields of the init (`lakefs`, `dropHosts`...). */
  extra?: Record<string, unknown>;
}

/** The `init` message of an executor in slot 0, logging at info under `logs`. */
export function executorInit(options: ExecutorInitOptions): Record<string, unknown> {
  return {
    slot: 0,
    workerId: options.workerId,
    modules: [options.task],
    workspaceRoot: options.ws,
    failureReasonMaxLength: 500,
    ...options.extra,
    log: {
      logRoot: options.logs,
      moduleName: options.moduleName,
      workerId: options.workerId,
      maxFileBytes: 1_000_000,
      retentionMs: 86_400_000,
      debug: false,
    },
  };
}

/** Sends `init` to an executor's stdin, one JSON line, as the supervisor does. */
export async function sendInit(
  writer: WritableStreamDefaultWriter<Uint8Array>,
  init: Record<string, unknown>,
): Promise<void> {
  await writer.write(new TextEncoder().encode(`${JSON.stringify({ type: "init", init })}\n`));
}

/** `dir`'s `ws` and `logs` folders, made. */
export async function executorDirs(dir: string): Promise<{ ws: string; logs: string }> {
  const ws = join(dir, "ws");
  await Deno.mkdir(ws);
  return { ws, logs: join(dir, "logs") };
}

/** A started executor: the process, and the writer of its stdin (init already sent). */
export interface StartedExecutor {
  child: Deno.ChildProcess;
  writer: WritableStreamDefaultWriter<Uint8Array>;
}

/** Spawns `command` with piped stdio and sends it `init`, as the supervisor does. */
export async function startExecutor(
  command: { command: string; args: readonly string[]; env?: Record<string, string> },
  init: Record<string, unknown>,
): Promise<StartedExecutor> {
  const child = new Deno.Command(command.command, {
    args: [...command.args],
    ...(command.env === undefined ? {} : { env: command.env }),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await sendInit(writer, init);
  return { child, writer };
}
