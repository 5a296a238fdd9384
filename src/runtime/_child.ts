/**
 * A child process speaking the protocol: spawned with `Deno.Command`, stdin/stdout piped for
 * messages, stderr inherited for human logs.
 *
 * @module
 */
import type { z } from "../vendor/zod.ts";
import type { ChildCommand } from "./permissions.ts";
import { MessageWriter, readMessages } from "./protocol.ts";

/** How a child ended. */
export interface ChildExit {
  code: number;
  signal: Deno.Signal | null;
}

/** A running child: messages in and out, its exit, and a way to kill it. */
export interface ChildHandle<In, Out> {
  readonly pid: number;
  /** Messages from the child, until its stdout closes. */
  readonly messages: AsyncIterable<In>;
  /** Sends a message; `false` when the child is gone. */
  send(message: Out): Promise<boolean>;
  /** Resolves when the child exits. */
  readonly exit: Promise<ChildExit>;
  /** Sends a signal; ignored when the child is already gone. */
  kill(signal: Deno.Signal): void;
}

/** Options of {@linkcode spawnChild}. */
export interface SpawnChildOptions<In> {
  command: ChildCommand;
  /** The child's whole environment (`clearEnv` is used). */
  env: Record<string, string>;
  /** Schema of the messages the child sends. */
  schema: z.ZodType<In>;
  /** Called for lines on stdout that are not protocol messages. */
  onInvalid?: (error: TypeError, line: string) => void;
  cwd?: string;
}

/**
 * Spawns a child. Requires `--allow-run` for the executable.
 *
 * @example
 * ```ts ignore
 * // `command` from childCommand and `env` from childEnv (permissions.ts), as start.ts does.
 * const child = spawnChild({ command, env, schema: FromBrokerSchema });
 * await child.send({ type: "init", init });
 * for await (const message of child.messages) handle(message);
 * ```
 */
export function spawnChild<In, Out>(options: SpawnChildOptions<In>): ChildHandle<In, Out> {
  const process = new Deno.Command(options.command.command, {
    args: options.command.args,
    env: { ...options.env, ...options.command.env },
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  }).spawn();
  const writer = new MessageWriter<Out>(process.stdin);
  const exit = process.status.then((status) => ({ code: status.code, signal: status.signal }));
  return {
    pid: process.pid,
    messages: readMessages(process.stdout, options.schema, options.onInvalid),
    send: (message) => writer.send(message),
    exit,
    kill(signal) {
      try {
        process.kill(signal);
      } catch {
        // already exited
      }
    },
  };
}

/** `code 3` or `signal SIGKILL`, for logs and failure reasons. */
export function describeExit(exit: ChildExit): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
}
