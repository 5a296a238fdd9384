/**
 * The module of a thread-mode Worker: the broker or an executor (by the worker's name, see
 * thread_spawner.ts), run by the same roles (roles.ts) as the child processes. Their byte streams are bridged to
 * `postMessage`: each message from the supervisor becomes one JSON line on the input, each
 * line on the output is posted as one message. Last, the worker posts its exit code and
 * closes itself.
 *
 * @module
 */
import { encodeMessage } from "./protocol.ts";
import { runBrokerRole, runExecutorRole } from "./roles.ts";
import type { FromWorkerEnvelope, ToWorkerEnvelope } from "./thread_spawner.ts";

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
function postExit(code: number, error?: string): void {
  if (exitPosted) return;
  exitPosted = true;
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

function bridge(): { input: ReadableStream<Uint8Array>; output: WritableStream<Uint8Array> } {
  const pipe = new TransformStream<Uint8Array, Uint8Array>();
  const writer = pipe.writable.getWriter();
  scope.onmessage = (event) => {
    if (event.data?.kind === "message") void writer.write(encodeMessage(event.data.message));
  };
  const decoder = new TextDecoder();
  let buffer = "";
  const output = new WritableStream<Uint8Array>({
    write(chunk) {
      buffer += decoder.decode(chunk, { stream: true });
      let index: number;
      while ((index = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, index);
        buffer = buffer.slice(index + 1);
        if (line.trim() === "") continue;
        scope.postMessage({ kind: "message", message: JSON.parse(line) });
      }
    },
  });
  return { input: pipe.readable, output };
}

async function run(): Promise<number> {
  const { input, output } = bridge();
  if (scope.name.startsWith("perago-broker")) return await runBrokerRole({ input, output });
  if (scope.name.startsWith("perago-executor")) return await runExecutorRole({ input, output });
  throw new TypeError(`worker entry: unknown role in worker name ${JSON.stringify(scope.name)}`);
}

try {
  postExit(await run());
} catch (error) {
  postExit(1, error instanceof Error ? `${error.name}: ${error.message}` : String(error));
}
realClose();
