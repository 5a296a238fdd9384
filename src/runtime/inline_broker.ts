/**
 * Thread mode's broker: the broker role run in the supervisor's own isolate, behind a
 * {@linkcode ChildHandle} like any other child, so the supervisor treats it as it treats a
 * broker process or Worker. Messages pass as objects through two in-memory queues: no
 * serialisation, no validation of what perago's own code built, and no wake-up of another
 * thread. Every task crossed that hop twice (its poll, its result); as a Worker each crossing
 * cost a `postMessage` and a wake-up of the other thread, as much CPU as the broker's own
 * request to Conductor.
 *
 * What the broker gives up is the Worker's own permission set (Conductor's host only): it runs
 * with the supervisor's, as perago's own code (no task code runs there). Its death still stops
 * the runtime: a broker that throws ends with code 1, and the supervisor fails as it does
 * for a broker process that exits.
 *
 * @module
 */
import type { ChildExit, ChildHandle } from "./_child.ts";
import type { OpenChannel } from "./channel.ts";
import type { FromBroker, ToBroker } from "./protocol.ts";

/** An unbounded queue read by one async iterator; `close` ends the iterator. */
class Queue<T> {
  #items: T[] = [];
  #wake: (() => void) | undefined;
  #closed = false;

  get closed(): boolean {
    return this.#closed;
  }

  push(item: T): boolean {
    if (this.#closed) return false;
    this.#items.push(item);
    this.#wake?.();
    return true;
  }

  close(): void {
    this.#closed = true;
    this.#wake?.();
  }

  async *drain(): AsyncGenerator<T> {
    while (true) {
      if (this.#items.length > 0) {
        // Hand over what is queued now, then look again (items pushed meanwhile follow).
        const batch = this.#items;
        this.#items = [];
        for (const item of batch) yield item;
        continue;
      }
      if (this.#closed) return;
      await new Promise<void>((resolve) => this.#wake = resolve);
      this.#wake = undefined;
    }
  }
}

/** Options of {@linkcode spawnInlineBroker}. */
export interface InlineBrokerOptions {
  /** Runs the broker role over the channel it is given; resolves with its exit code. */
  run: (open: OpenChannel) => Promise<number>;
  /** Called with the error that ended the broker (it is then reported as exited with code 1). */
  onCrash?: (message: string) => void;
}

/** Exit code reported for an inline broker that threw. */
export const INLINE_CRASH_EXIT_CODE = 1;

/**
 * Starts the broker role in this isolate and returns a {@linkcode ChildHandle} over it. `pid`
 * is this process's. `kill()` ends the handle at once (reported as that signal) and closes
 * the broker's way in, so it stops as a broker whose supervisor went away does.
 *
 * @example
 * ```ts
 * import type { OpenChannel } from "./channel.ts";
 *
 * // A stand-in role: answers `ready`, then exits 0 at `shutdown`.
 * const run = async (open: OpenChannel) => {
 *   const channel = open<{ type: string }, { type: "ready"; pid: number }>(
 *     undefined as never,
 *     () => {},
 *   );
 *   await channel.send({ type: "ready", pid: Deno.pid });
 *   for await (const message of channel.messages) if (message.type === "shutdown") break;
 *   return 0;
 * };
 * const broker = spawnInlineBroker({ run });
 * (await broker.messages[Symbol.asyncIterator]().next()).value; // { type: "ready", pid: ... }
 * await broker.send({ type: "shutdown" });
 * (await broker.exit).code; // 0
 * ```
 */
export function spawnInlineBroker(options: InlineBrokerOptions): ChildHandle<FromBroker, ToBroker> {
  const toBroker = new Queue<ToBroker>();
  const fromBroker = new Queue<FromBroker>();
  const exit = Promise.withResolvers<ChildExit>();
  let ended = false;
  const end = (result: ChildExit) => {
    if (ended) return;
    ended = true;
    toBroker.close();
    fromBroker.close();
    exit.resolve(result);
  };
  // The role's channel: what the supervisor sends, as sent (perago's own objects, typed).
  const open: OpenChannel = <In, Out>() => ({
    messages: toBroker.drain() as unknown as AsyncGenerator<In>,
    send: (message: Out) => Promise.resolve(fromBroker.push(message as unknown as FromBroker)),
    close: () => Promise.resolve(),
  });
  // Started after this turn, as a process or Worker would be: the supervisor first takes the
  // handle and starts reading.
  void Promise.resolve().then(() => options.run(open)).then(
    (code) => end({ code, signal: null }),
    (error) => {
      options.onCrash?.(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
      end({ code: INLINE_CRASH_EXIT_CODE, signal: null });
    },
  );
  return {
    pid: Deno.pid,
    messages: fromBroker.drain(),
    send: (message) => Promise.resolve(!ended && toBroker.push(message)),
    exit: exit.promise,
    kill(signal: Deno.Signal) {
      end({ code: 128 + (signal === "SIGKILL" ? 9 : 15), signal });
    },
  };
}
