import assert from "node:assert/strict";
import type { OpenChannel } from "../../src/runtime/channel.ts";
import { spawnInlineBroker } from "../../src/runtime/inline_broker.ts";
import type { FromBroker, ToBroker } from "../../src/runtime/protocol.ts";

/** A stand-in broker role: echoes each credit as a `fatal` line, records what it saw. */
function echoRole(seen: string[], ended: PromiseWithResolvers<string>) {
  return async (open: OpenChannel): Promise<number> => {
    const channel = open<ToBroker, FromBroker>(undefined as never, () => {});
    await channel.send({ type: "ready", pid: Deno.pid });
    for await (const message of channel.messages) {
      seen.push(message.type);
      if (message.type === "credit") {
        await channel.send({ type: "fatal", message: `credit ${message.n}` });
      }
      if (message.type === "shutdown") {
        ended.resolve("shutdown");
        return 0;
      }
    }
    ended.resolve("supervisor gone");
    return 2;
  };
}

Deno.test("inline broker: messages pass both ways in order; the role's code is its exit", async () => {
  const seen: string[] = [];
  const ended = Promise.withResolvers<string>();
  const broker = spawnInlineBroker({ run: echoRole(seen, ended) });
  assert.equal(broker.pid, Deno.pid);
  const messages = broker.messages[Symbol.asyncIterator]();
  assert.equal((await messages.next()).value?.type, "ready");
  for (let n = 1; n <= 3; n++) assert.equal(await broker.send({ type: "credit", n }), true);
  for (let n = 1; n <= 3; n++) {
    assert.deepEqual((await messages.next()).value, { type: "fatal", message: `credit ${n}` });
  }
  await broker.send({ type: "shutdown" });
  assert.deepEqual(await broker.exit, { code: 0, signal: null });
  assert.equal(await ended.promise, "shutdown");
  assert.deepEqual(seen, ["credit", "credit", "credit", "shutdown"]);
  assert.equal((await messages.next()).done, true, "its messages end with it");
  assert.equal(await broker.send({ type: "drain" }), false, "nothing reaches an ended broker");
});

Deno.test("inline broker: kill ends the handle at once and the role sees its way in close", async () => {
  const seen: string[] = [];
  const ended = Promise.withResolvers<string>();
  const broker = spawnInlineBroker({ run: echoRole(seen, ended) });
  const messages = broker.messages[Symbol.asyncIterator]();
  assert.equal((await messages.next()).value?.type, "ready");
  broker.kill("SIGKILL");
  assert.deepEqual(await broker.exit, { code: 137, signal: "SIGKILL" });
  assert.equal(await ended.promise, "supervisor gone");
});

Deno.test("inline broker: a role that throws is reported as a crash, exit code 1", async () => {
  const crashes: string[] = [];
  const broker = spawnInlineBroker({
    run: () => Promise.reject(new RangeError("bad book-keeping")),
    onCrash: (message) => crashes.push(message),
  });
  assert.deepEqual(await broker.exit, { code: 1, signal: null });
  assert.deepEqual(crashes, ["RangeError: bad book-keeping"]);
  assert.equal((await broker.messages[Symbol.asyncIterator]().next()).done, true);
});
