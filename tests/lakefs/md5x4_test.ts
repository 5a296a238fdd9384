import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { HashingWriters } from "../../src/lakefs/_hashing_writer.ts";
import { MD5_INIT, md5x4WasmBytes } from "../../src/lakefs/_md5x4.ts";
import { withTempDir } from "./_helpers.ts";

const PAGES = 64;

/**
 * MD5 of four inputs through the module alone: each padded as MD5 pads, the lanes run for
 * the blocks they have in common, then a lane that ran out idles on a block nobody reads.
 */
function md5x4(inputs: Uint8Array[]): string[] {
  const memory = new WebAssembly.Memory({ initial: PAGES, maximum: PAGES, shared: true });
  const { md5x4: run } = new WebAssembly.Instance(
    new WebAssembly.Module(md5x4WasmBytes(PAGES)),
    { env: { memory } },
  ).exports as { md5x4: (...args: number[]) => void };
  const bytes = new Uint8Array(memory.buffer);
  const words = new Uint32Array(memory.buffer);
  const STATE = 0;
  let at = 1024;
  const lanes = inputs.map((input) => {
    const blocks = Math.floor((input.length + 8) / 64) + 1;
    const start = at;
    bytes.set(input, start);
    bytes[start + input.length] = 0x80;
    const view = new DataView(memory.buffer, start + blocks * 64 - 8, 8);
    view.setUint32(0, (input.length * 8) % 2 ** 32, true);
    view.setUint32(4, Math.floor((input.length * 8) / 2 ** 32), true);
    at += blocks * 64 + 64;
    return { next: start, left: blocks };
  });
  const idle = at;
  for (let lane = 0; lane < 4; lane++) {
    for (let w = 0; w < 4; w++) words[STATE / 4 + w * 4 + lane] = MD5_INIT[w]!;
  }
  // Unequal lengths: each call runs the blocks every lane still has; finished lanes idle.
  const saved = new Uint32Array(16);
  while (lanes.some((lane) => lane.left > 0)) {
    const n = Math.min(...lanes.filter((lane) => lane.left > 0).map((lane) => lane.left));
    saved.set(words.subarray(STATE / 4, STATE / 4 + 16));
    run(STATE, ...lanes.map((lane) => lane.left > 0 ? lane.next : idle), n);
    for (const [i, lane] of lanes.entries()) {
      if (lane.left > 0) {
        lane.next += n * 64;
        lane.left -= n;
      } else {
        for (let w = 0; w < 4; w++) words[STATE / 4 + w * 4 + i] = saved[w * 4 + i]!;
      }
    }
  }
  return lanes.map((_, lane) => {
    let hex = "";
    for (let w = 0; w < 4; w++) {
      const word = words[STATE / 4 + w * 4 + lane]!;
      for (let b = 0; b < 4; b++) hex += ((word >>> (b * 8)) & 0xff).toString(16).padStart(2, "0");
    }
    return hex;
  });
}

const md5 = (data: Uint8Array) => createHash("md5").update(data).digest("hex");

Deno.test("md5x4: every length 0..300 and large ones, unequal across lanes, as node:crypto", () => {
  const lengths = Array.from({ length: 301 }, (_, i) => i);
  // Four different lengths per call: i, 300 - i, (i * 7) % 301, (i * 13 + 5) % 301.
  for (const i of lengths) {
    const inputs = [i, 300 - i, (i * 7) % 301, (i * 13 + 5) % 301].map((n) => randomBytes(n));
    assert.deepEqual(md5x4(inputs), inputs.map(md5), `lengths ${inputs.map((x) => x.length)}`);
  }
  const large = [1024 * 1024 + 13, 64, 300_001, 0].map((n) => randomBytes(n));
  assert.deepEqual(md5x4(large), large.map(md5));
});

for (const simd of [true, false]) {
  Deno.test(`HashingWriters (${simd ? "four-lane MD5" : "node:crypto"}): many streams of any length, odd chunks, as node:crypto`, async () => {
    await withTempDir(async (dir) => {
      const writers = new HashingWriters({ simd });
      try {
        // Lengths 0..300 in small chunks and a few large ones in large odd chunks, written
        // interleaved, finished in turn (finish and finishLater).
        const sizes = [
          ...Array.from({ length: 40 }, (_, i) => (i * 7919) % 301),
          5 * 1024 * 1024 + 77,
          3 * 1024 * 1024 + 1,
          700_001,
          64,
        ];
        const streams = await Promise.all(sizes.map(async (size, n) => ({
          data: randomBytes(size),
          path: join(dir, `f${n}`),
          sink: await writers.open(join(dir, `f${n}`), { createNew: true }),
          at: 0,
          step: size > 1000 ? 100_000 + n * 4099 : 1 + (n % 7),
        })));
        while (streams.some((s) => s.at < s.data.length)) {
          for (const s of streams) {
            if (s.at >= s.data.length) continue;
            const chunk = s.data.subarray(s.at, s.at + s.step);
            s.at += chunk.length;
            await s.sink.write(chunk);
          }
        }
        const results = await Promise.all(
          streams.map((s, n) => n % 2 === 0 ? s.sink.finish() : s.sink.finishLater()),
        );
        for (const [n, s] of streams.entries()) {
          assert.deepEqual(results[n], { size: s.data.length, md5: md5(s.data) }, s.path);
          assert.deepEqual(await Deno.readFile(s.path), new Uint8Array(s.data), s.path);
        }
      } finally {
        await writers.close();
      }
    });
  });
}
