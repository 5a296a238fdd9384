/**
 * Thread mode: the executors as Web Workers in the supervisor's process, each with its own
 * Deno permissions (`new Worker(url, { deno: { permissions } })`), speaking the same protocol
 * messages as the child processes, over `postMessage` instead of stdio. The thread-mode broker
 * runs in the supervisor's own isolate (inline_broker.ts): its messages cross no thread.
 *
 * Per-worker permissions are made from the same lists as the child processes' flags
 * ({@linkcode childPermissionSets}): an executor reaches only lakeFS and reads/writes only the workspace and log roots
 * (plus reading the task modules' directories and perago's `mod.ts`, `src/`, `deno.json`).
 * No worker gets environment, subprocess, FFI or system-information access.
 *
 * Per-worker permissions are an unstable Deno API: the process needs
 * `--unstable-worker-options` (or `"unstable": ["worker-options"]` in its `deno.json`);
 * without it Deno ends the whole process with exit code 70 at the first such Worker, so
 * {@linkcode workerOptionsEnabled} is checked first and start refuses with a clear message.
 *
 * Wire format between the supervisor and a worker (structured clone, no JSON lines):
 * - supervisor to worker: `{ kind: "messages", messages }` (`ToExecutor`);
 * - worker to supervisor: `{ kind: "messages", messages }` (each validated with the role's
 *   schema like a child's stdout line) and, last, `{ kind: "exit", code, error? }`.
 * Both sides batch ({@linkcode MessageBatcher}): the messages sent in one turn share one
 * post, and lazy ones (`assigned`, `delivered`, `metrics`) wait up to 20 ms for the next, so
 * a task costs a few wake-ups of the other thread instead of one per message.
 *
 * A worker that throws an uncaught error is terminated and reported as exited with code 1
 * (so the supervisor restarts an executor in its slot, or stops when the broker dies);
 * `kill()` terminates it and reports the signal, like a killed process.
 *
 * @module
 */
import type { z } from "../vendor/zod.ts";
import type { ChildExit, ChildHandle } from "./_child.ts";
import { denoConfigInUse, type DenoConfigProbe, parseDenoConfig } from "./deno_config.ts";
import type { ChildPermissionSets } from "./permissions.ts";
import { MessageBatcher } from "./protocol.ts";

const ENTRY_URL = new URL("./_worker_entry.ts", import.meta.url);

/** Worker names start with this (`perago-executor-0003`). */
export const WORKER_NAME_PREFIX = "perago-";

/** What a worker posts to the supervisor. */
export type FromWorkerEnvelope =
  | { kind: "messages"; messages: unknown[] }
  | { kind: "exit"; code: number; error?: string };

/** What the supervisor posts to a worker: the messages of one batch, in order. */
export interface ToWorkerEnvelope {
  kind: "messages";
  messages: unknown[];
}

/**
 * Posts `messages` as one envelope; when the batch cannot be cloned, each message alone, so
 * one bad message loses only itself (it is passed to `onUnsent`).
 */
export function postBatch(
  post: (envelope: ToWorkerEnvelope) => void,
  messages: unknown[],
  onUnsent: (message: unknown, error: unknown) => void = () => {},
): void {
  try {
    post({ kind: "messages", messages });
  } catch {
    for (const message of messages) {
      try {
        post({ kind: "messages", messages: [message] });
      } catch (error) {
        onUnsent(message, error);
      }
    }
  }
}

/**
 * Deno's Worker permission object for a role's lists: exactly these paths and hosts, nothing
 * else (no env, run, ffi, sys; no remote imports). It has no deny list, so `denyRead` has no
 * place here (the supervisor warns when a read grant covers `.env`).
 *
 * @example
 * ```ts
 * workerPermissions({ read: ["/w"], write: ["/w"], net: ["lake:8000"] });
 * // { read: ["/w"], write: ["/w"], net: ["lake:8000"], env: false, run: false, ffi: false,
 * //   sys: false, import: false }
 * ```
 */
export function workerPermissions(
  sets: Pick<ChildPermissionSets, "read" | "write" | "net">,
): Deno.PermissionOptionsObject {
  return {
    read: [...sets.read],
    write: [...sets.write],
    net: [...sets.net],
    env: false,
    run: false,
    ffi: false,
    sys: false,
    import: false,
  };
}

/** Where Deno would take this process's unstable flags from; inputs of the check. */
export interface WorkerOptionsProbe extends DenoConfigProbe {
  /** @default Deno.build.standalone */
  standalone?: boolean;
}

/**
 * Whether this process may create Workers with their own permissions
 * (`--unstable-worker-options`): `true`, `false`, or `undefined` when it cannot tell (no
 * `/proc`, or no permission to read it), in which case the caller goes ahead.
 *
 * Looked at, in order: a compiled binary (the compile script bakes the flag: `true`); the
 * command line; the `unstable` list of the config file in use ({@linkcode denoConfigInUse}:
 * `--config`, else the `deno.json`/`deno.jsonc` nearest to the main module, as Deno finds it).
 */
export function workerOptionsEnabled(probe: WorkerOptionsProbe = {}): boolean | undefined {
  if (probe.standalone ?? Deno.build.standalone === true) return true;
  const found = denoConfigInUse(probe);
  if (found === undefined) return undefined;
  if (found.denoArgs.includes("--unstable-worker-options")) return true;
  if (found.config === null) return false;
  return configEnablesWorkerOptions(found.config.text);
}

function configEnablesWorkerOptions(text: string): boolean {
  const config = parseDenoConfig(text);
  if (config === undefined) return /"unstable"\s*:\s*\[[^\]]*"worker-options"/.test(text);
  return Array.isArray(config.unstable) && config.unstable.includes("worker-options");
}

/** Options of {@linkcode spawnWorkerChild}. */
export interface SpawnWorkerOptions<In> {
  /** Executor slot (names the worker). */
  slot: number;
  /** The worker's permissions ({@linkcode workerPermissions}). */
  permissions: Deno.PermissionOptionsObject;
  /** Schema of the messages the worker sends. */
  schema: z.ZodType<In>;
  /** Called for a posted message that is not a valid protocol message. */
  onInvalid?: (error: TypeError, message: unknown) => void;
  /** Called with an uncaught error that ended the worker. */
  onCrash?: (message: string) => void;
  /** The worker's module. @default ./_worker_entry.ts */
  entry?: URL;
}

/** Exit code reported for a worker that died of an uncaught error. */
export const CRASH_EXIT_CODE = 1;

/**
 * Starts an executor as a Web Worker and returns a {@linkcode ChildHandle} over it, so the
 * supervisor treats it exactly like a child process. `pid` is this process's pid (the worker
 * lives in it). Requires `--unstable-worker-options` and, in this process, every permission
 * the worker is given.
 *
 * @example
 * ```ts ignore
 * // `permissions` from workerPermissions, as start.ts does; needs --unstable-worker-options.
 * const executor = spawnWorkerChild({ slot: 0, permissions, schema: FromExecutorSchema });
 * await executor.send({ type: "init", init });
 * ```
 */
export function spawnWorkerChild<In, Out>(options: SpawnWorkerOptions<In>): ChildHandle<In, Out> {
  const name = `${WORKER_NAME_PREFIX}executor-${String(options.slot).padStart(4, "0")}`;
  const worker = new Worker(options.entry ?? ENTRY_URL, {
    type: "module",
    name,
    deno: { permissions: options.permissions },
  });
  const exit = Promise.withResolvers<ChildExit>();
  let ended = false;
  const queue: In[] = [];
  let wake: (() => void) | undefined;
  const end = (result: ChildExit) => {
    if (ended) return;
    ended = true;
    worker.terminate();
    wake?.();
    exit.resolve(result);
  };
  worker.onmessage = (event: MessageEvent<FromWorkerEnvelope>) => {
    const data = event.data;
    if (data?.kind === "exit") {
      if (data.error !== undefined) options.onCrash?.(data.error);
      end({ code: data.code, signal: null });
      return;
    }
    if (data?.kind !== "messages" || !Array.isArray(data.messages)) {
      options.onInvalid?.(new TypeError("protocol: not a worker envelope"), data);
      return;
    }
    for (const message of data.messages) {
      const parsed = options.schema.safeParse(message);
      if (!parsed.success) {
        options.onInvalid?.(
          new TypeError(`protocol: invalid message: ${parsed.error.message.slice(0, 500)}`),
          message,
        );
        continue;
      }
      queue.push(parsed.data);
    }
    wake?.();
  };
  worker.onerror = (event: ErrorEvent) => {
    event.preventDefault(); // keep the supervisor alive: a crashed worker is a dead child
    options.onCrash?.(event.message);
    end({ code: CRASH_EXIT_CODE, signal: null });
  };
  worker.onmessageerror = () => {
    options.onInvalid?.(new TypeError("protocol: a message could not be deserialised"), null);
  };
  const out = new MessageBatcher<Out>((batch) => {
    if (ended) return;
    postBatch((envelope) => worker.postMessage(envelope), batch);
  });
  async function* messages(): AsyncGenerator<In> {
    while (true) {
      const next = queue.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (ended) return;
      await new Promise<void>((resolve) => wake = resolve);
      wake = undefined;
    }
  }
  return {
    pid: Deno.pid,
    messages: messages(),
    send(message: Out): Promise<boolean> {
      if (ended) return Promise.resolve(false);
      out.send(message);
      return Promise.resolve(true);
    },
    exit: exit.promise,
    kill(signal: Deno.Signal) {
      end({ code: 128 + (signal === "SIGKILL" ? 9 : 15), signal });
    },
  };
}
