/**
 * The message channel between the supervisor and one of its roles (the broker or an
 * executor), whatever carries it: JSON lines over a child process's stdin/stdout
 * ({@linkcode streamChannel}), or structured-clone messages of a thread-mode Worker (the
 * Worker's entry module). The roles only see {@linkcode RoleChannel}: messages in, `send` out,
 * and {@linkcode receiveInit} for the handshake both start with.
 *
 * @module
 */
import { z } from "../vendor/zod.ts";
import {
  type ByteReader,
  checkMessage,
  MessageWriter,
  readMessages,
  type SyncWriter,
} from "./protocol.ts";

/** A role's side of the channel. */
export interface RoleChannel<In, Out> {
  /** Messages from the supervisor, checked against the role's schema, until it goes away. */
  readonly messages: AsyncGenerator<In>;
  /** Sends a message to the supervisor. */
  send(message: Out): Promise<unknown>;
  /** Flushes what is pending and closes the way out. */
  close(): Promise<void>;
}

/**
 * Opens a role's channel: what the supervisor sends is checked with `schema`; a message that
 * fails the check is passed to `onInvalid` and skipped.
 */
export type OpenChannel = <In, Out>(
  schema: z.ZodType<In>,
  onInvalid: (error: TypeError) => void,
) => RoleChannel<In, Out>;

/**
 * The channel of a child process: JSON lines on `input` (its stdin) and `output` (its
 * stdout, written synchronously when it can be).
 *
 * @example
 * ```ts
 * import { ToBrokerSchema } from "./protocol.ts";
 *
 * const input = ReadableStream.from(['{"type":"drain"}\n']).pipeThrough(new TextEncoderStream());
 * const sent: Uint8Array[] = [];
 * const output = new WritableStream<Uint8Array>({ write: (chunk) => void sent.push(chunk) });
 * const channel = streamChannel(input, output)(ToBrokerSchema, () => {});
 * (await channel.messages.next()).value; // { type: "drain" }
 * await channel.close();
 * ```
 */
export function streamChannel(
  input: ReadableStream<Uint8Array> | ByteReader,
  output: WritableStream<Uint8Array> | SyncWriter,
): OpenChannel {
  return <In, Out>(schema: z.ZodType<In>, onInvalid: (error: TypeError) => void) => {
    const writer = new MessageWriter<Out>(output);
    return {
      messages: readMessages(input, schema, onInvalid),
      send: (message: Out) => writer.send(message),
      close: () => writer.close(),
    };
  };
}

/**
 * The channel of a thread-mode Worker: structured-clone messages, checked with the schema as
 * they are read (no JSON lines in between). `listen` installs, at once, the handler of the
 * messages from the supervisor; `post` sends one to it.
 *
 * @example
 * ```ts
 * import { ToBrokerSchema } from "./protocol.ts";
 *
 * let deliver: (message: unknown) => void = () => {};
 * const posted: unknown[] = [];
 * const channel = messageChannel((handler) => deliver = handler, (m) => posted.push(m))(
 *   ToBrokerSchema,
 *   () => {},
 * );
 * deliver({ type: "drain" });
 * (await channel.messages.next()).value; // { type: "drain" }
 * ```
 */
export function messageChannel(
  listen: (handler: (message: unknown) => void) => void,
  post: (message: unknown) => void,
): OpenChannel {
  // Listening starts now, not when the role opens the channel: a Worker drops a message that
  // arrives while it has no handler, and the role's modules load first.
  const queue: unknown[] = [];
  let wake: (() => void) | undefined;
  listen((message) => {
    queue.push(message);
    wake?.();
  });
  return <In, Out>(schema: z.ZodType<In>, onInvalid: (error: TypeError) => void) => {
    async function* messages(): AsyncGenerator<In> {
      while (true) {
        if (queue.length === 0) {
          await new Promise<void>((resolve) => wake = resolve);
          wake = undefined;
          continue;
        }
        const parsed = checkMessage(schema, queue.shift());
        if (parsed.success) yield parsed.data;
        else {onInvalid(
            new TypeError(`protocol: invalid message: ${z.prettifyError(parsed.error)}`),
          );}
      }
    }
    return {
      messages: messages(),
      send: (message: Out) => Promise.resolve(post(message)),
      close: () => Promise.resolve(),
    };
  };
}

/**
 * The handshake every role starts with: the first message must be `init` (checked with
 * `initSchema`). Anything else is answered with a `fatal` message and the channel closed;
 * `undefined` is returned and the role exits 1.
 */
export async function receiveInit<I>(
  channel: RoleChannel<{ type: string; init?: unknown }, { type: "fatal"; message: string }>,
  role: "broker" | "executor",
  initSchema: z.ZodType<I>,
): Promise<I | undefined> {
  const first = await channel.messages.next();
  if (first.done || first.value.type !== "init") {
    await channel.send({ type: "fatal", message: `${role}: the first message must be init` });
    await channel.close();
    return undefined;
  }
  return initSchema.parse(first.value.init);
}
