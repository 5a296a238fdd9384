import assert from "node:assert/strict";
import { readAhead } from "../../src/util/read_ahead.ts";

/** Resolves once `check` holds, polling the event loop; fails after a deadline. */
async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met within 5 s");
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

Deno.test("readAhead pulls the whole source before it is consumed, then yields it in order", async () => {
  let pulled = 0;
  async function* source() {
    for (let i = 0; i < 3000; i++) {
      pulled++;
      if (i % 500 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
      yield i;
    }
  }
  const ahead = readAhead(source());
  await until(() => pulled === 3000);
  const seen: number[] = [];
  for await (const item of ahead) seen.push(item);
  assert.deepEqual(seen, Array.from({ length: 3000 }, (_, i) => i));
  await assert.rejects(async () => {
    for await (const _ of ahead) break;
  }, /only once/);
});

Deno.test("readAhead waits for items not read yet and keeps the source's error for the consumer", async () => {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  async function* source() {
    yield 1;
    await gate;
    yield 2;
    throw new Error("page 3 failed");
  }
  const ahead = readAhead(source());
  const seen: number[] = [];
  const consumed = (async () => {
    for await (const item of ahead) {
      seen.push(item);
      if (item === 1) release();
    }
  })();
  await assert.rejects(consumed, /page 3 failed/);
  assert.deepEqual(seen, [1, 2]);
});

Deno.test("readAhead keeps an error nobody consumes, and cancel stops the source", async () => {
  const failing = readAhead((async function* () {
    yield 1;
    throw new Error("never read");
  })());
  let closed = false;
  let pulled = 0;
  const endless = readAhead((async function* () {
    try {
      while (true) {
        pulled++;
        await new Promise((resolve) => setTimeout(resolve, 1));
        yield pulled;
      }
    } finally {
      closed = true;
    }
  })());
  await until(() => pulled > 2);
  endless.cancel();
  failing.cancel();
  await until(() => closed);
});

Deno.test("readAhead holds at most maxBuffered items not consumed yet", async () => {
  let pulled = 0;
  let consumed = 0;
  let peak = 0;
  async function* source() {
    for (let i = 0; i < 100; i++) {
      pulled++;
      peak = Math.max(peak, pulled - consumed);
      yield i;
    }
  }
  const ahead = readAhead(source(), 10);
  await until(() => pulled >= 10);
  const seen: number[] = [];
  for await (const item of ahead) {
    consumed++;
    seen.push(item);
    // A slow consumer: the source could run far ahead without the bound.
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  assert.deepEqual(seen, Array.from({ length: 100 }, (_, i) => i));
  // The item being asked for when the bound is reached may come on top.
  assert.ok(peak <= 11, `peak ${peak}`);
});
