/**
 * The channel seam between the supervisor and a role: both transports carry the same
 * messages, check them with the role's schema, and the init handshake refuses anything else
 * first.
 */
import assert from "node:assert/strict";
import {
  messageChannel,
  type OpenChannel,
  receiveInit,
  streamChannel,
} from "../../src/runtime/channel.ts";
import {
  BrokerInitSchema,
  type FromBroker,
  type ToBroker,
  ToBrokerSchema,
} from "../../src/runtime/protocol.ts";

const INIT = {
  type: "init",
  init: {
    workerId: "sumBroker",
    taskTypes: ["sum"],
    conductor: { serverUrl: "http://127.0.0.1:8080/api" },
    pollTimeoutMs: 100,
    log: {
      logRoot: "/tmp/logs",
      moduleName: "sum",
      workerId: "sumBroker",
      maxFileBytes: 1024,
      retentionMs: 1000,
      debug: false,
    },
  },
};

/** A stream channel fed `lines`, and what it wrote, decoded. */
function overStreams(lines: string[]): { open: OpenChannel; written: () => unknown[] } {
  const input = ReadableStream.from(lines).pipeThrough(new TextEncoderStream());
  let text = "";
  const decoder = new TextDecoder();
  const output = new WritableStream<Uint8Array>({
    write: (chunk) => void (text += decoder.decode(chunk)),
  });
  return {
    open: streamChannel(input, output),
    written: () => text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line)),
  };
}

/** A message channel fed `messages`, and what it posted. */
function overMessages(messages: unknown[]): { open: OpenChannel; written: () => unknown[] } {
  const posted: unknown[] = [];
  const open = messageChannel((handler) => {
    // Delivered before the role opens the channel, as a Worker's first message may be.
    for (const message of messages) handler(message);
  }, (message) => posted.push(message));
  return { open, written: () => posted };
}

for (
  const [transport, make] of [
    ["stream", (m: unknown[]) => overStreams(m.map((x) => JSON.stringify(x) + "\n"))],
    ["message", overMessages],
  ] as const
) {
  Deno.test(`channel (${transport}): init is received, invalid messages are skipped and reported, the rest arrive in order`, async () => {
    const { open } = make([INIT, { type: "credit", n: 0 }, { type: "drain" }]);
    const invalid: string[] = [];
    const channel = open<ToBroker, FromBroker>(ToBrokerSchema, (e) => invalid.push(e.message));
    const init = await receiveInit(channel, "broker", BrokerInitSchema);
    assert.equal(init?.workerId, "sumBroker");
    const next = await channel.messages.next();
    assert.deepEqual(next.value, { type: "drain" });
    assert.equal(invalid.length, 1);
    assert.match(invalid[0]!, /protocol: invalid message/);
  });

  Deno.test(`channel (${transport}): a first message other than init is answered fatal`, async () => {
    const { open, written } = make([{ type: "drain" }]);
    const channel = open<ToBroker, FromBroker>(ToBrokerSchema, () => {});
    assert.equal(await receiveInit(channel, "broker", BrokerInitSchema), undefined);
    assert.deepEqual(written(), [
      { type: "fatal", message: "broker: the first message must be init" },
    ]);
  });
}
