/**
 * Executor lanes, the executor's side: connects to the Unix socket of its slot, proves the
 * lane with the id and secret of its `init` (`hello`, the first line), and then receives its
 * attempts and fence answers there and sends its fence look-ups and outcomes there (see
 * lane_router.ts for the broker's side and what it checks).
 *
 * @module
 */
import { sleep } from "../util/sleep.ts";
import {
  type FromLane,
  MessageWriter,
  readMessages,
  type ToExecutor,
  ToExecutorSchema,
} from "./protocol.ts";

/** The lane settings of an executor's init. */
export interface LaneSettings {
  path: string;
  id: number;
  secret: string;
}

/** An executor's open lane. */
export interface ExecutorLane {
  /** What the broker sends, until the lane closes. */
  readonly messages: AsyncGenerator<ToExecutor>;
  /** Sends a fence look-up or an outcome; `false` once the lane is broken. */
  send(message: Exclude<FromLane, { type: "hello" }>): Promise<boolean>;
  /** Flushes what is pending and closes the lane. */
  close(): Promise<void>;
}

/** The lane could not be opened. */
export class LaneConnectError extends Error {
  override name = "LaneConnectError";
}

/**
 * Connects to the lane at `settings.path` and says hello. The broker listens on it before
 * the executor starts (the supervisor opens the lane first); a socket not there yet (or
 * refusing) is tried again until `timeoutMs`, kept short: a broker that stopped meanwhile
 * (the runtime stopping as this executor starts) must not hold up the stop.
 *
 * @throws {LaneConnectError} when no connection was made in time.
 */
export async function connectLane(
  settings: LaneSettings,
  options: { timeoutMs?: number; onInvalid?: (error: TypeError) => void } = {},
): Promise<ExecutorLane> {
  const deadline = Date.now() + (options.timeoutMs ?? 2_000);
  let conn: Deno.Conn | undefined;
  let last: unknown;
  while (conn === undefined) {
    try {
      conn = await Deno.connect({ transport: "unix", path: settings.path });
    } catch (error) {
      last = error;
      if (
        !(error instanceof Deno.errors.NotFound || error instanceof Deno.errors.ConnectionRefused)
      ) break;
      if (Date.now() >= deadline) break;
      await sleep(50);
    }
  }
  if (conn === undefined) {
    throw new LaneConnectError(
      `executor lane: cannot connect to ${settings.path}: ${(last as Error)?.message}; the ` +
        "broker listens there before the executor starts: check that it runs and that the " +
        "lane directory is not removed",
    );
  }
  const writer = new MessageWriter<FromLane>(conn);
  await writer.send({ type: "hello", id: settings.id, secret: settings.secret });
  const opened = conn;
  return {
    messages: readMessages(opened, ToExecutorSchema, options.onInvalid),
    send: (message) => writer.send(message),
    async close() {
      await writer.close();
      try {
        opened.close();
      } catch { /* closed */ }
    },
  };
}
