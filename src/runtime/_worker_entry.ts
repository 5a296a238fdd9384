/**
 * The module of a thread-mode Worker: an executor (thread_spawner.ts), run by the same role
 * (roles.ts) as an executor process, over a `messageChannel`: the supervisor's
 * structured-clone messages in, checked with the role's schema, and the role's messages
 * posted out, with no JSON lines in between. Last, the worker posts its exit code and closes
 * itself.
 *
 * @module
 */
import { messageChannel } from "./channel.ts";
import { runExecutorRole } from "./roles.ts";
import { MessageBatcher } from "./protocol.ts";
import { type FromWorkerEnvelope, postBatch, type ToWorkerEnvelope } from "./thread_spawner.ts";

interface WorkerScope {
  name: string;
  onmessage: ((event: MessageEvent<ToWorkerEnvelope>) => void) | null;
  postMessage(message: FromWorkerEnvelope): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;

// A Worker that calls `Deno.exit()` or `close()` ends without the supervisor hearing of it:
// both are wrapped (before any task module loads) to post the exit first, so the slot is
// freed and restarted like a process that exited.
const realExit = Deno.exit.bind(Deno);
const realClose = scope.close.bind(scope);
let exitPosted = false;
// The role's messages, batched per turn (see thread_spawner.ts); flushed before the exit.
const out = new MessageBatcher<unknown>((batch) => postBatch(scope.postMessage.bind(scope), batch));
function postExit(code: number, error?: string): void {
  if (exitPosted) return;
  exitPosted = true;
  out.flush();
  scope.postMessage({ kind: "exit", code, ...(error === undefined ? {} : { error }) });
}
Object.defineProperty(Deno, "exit", {
  value: (code?: number): never => {
    postExit(code ?? 0, `Deno.exit(${code ?? 0}) called in the worker`);
    return realExit(code);
  },
  configurable: true,
  writable: true,
});
scope.close = () => {
  postExit(0, "close() called in the worker");
  realClose();
};

async function run(): Promise<number> {
  // Structured-clone messages both ways; listening starts here, before the role loads.
  const open = messageChannel(
    (handler) => {
      scope.onmessage = (event) => {
        if (event.data?.kind !== "messages" || !Array.isArray(event.data.messages)) return;
        for (const message of event.data.messages) handler(message);
      };
    },
    (message) => out.send(message),
  );
  if (scope.name.startsWith("perago-executor")) return await runExecutorRole(open);
  throw new TypeError(`worker entry: unknown role in worker name ${JSON.stringify(scope.name)}`);
}

try {
  postExit(await run());
} catch (error) {
  postExit(1, error instanceof Error ? `${error.name}: ${error.message}` : String(error));
}
realClose();
