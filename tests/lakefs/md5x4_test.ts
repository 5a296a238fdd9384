import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { FileHashers } from "../../src/lakefs/_file_hasher.ts";
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

const MODES = [
  { name: "four-lane MD5 in a worker", options: {} },
  { name: "node:crypto in a worker", options: { simd: false } },
  { name: "node:crypto on the calling thread", options: { workers: false } },
];

for (const { name, options } of MODES) {
  Deno.test(`FileHashers (${name}): many files of any length read back at once, as node:crypto`, async () => {
    await withTempDir(async (dir) => {
      const hashers = new FileHashers(options);
      try {
        // Lengths 0..300 and a few large ones (longer than a lane's 256 KiB region, odd),
        // all handed over at once: lanes finish at different times and take the next file.
        const sizes = [
          ...Array.from({ length: 40 }, (_, i) => (i * 7919) % 301),
          5 * 1024 * 1024 + 77,
          3 * 1024 * 1024 + 1,
          700_001,
          262_144,
          64,
        ];
        const files = await Promise.all(sizes.map(async (size, n) => {
          const data = randomBytes(size);
          const path = join(dir, `f${n}`);
          await Deno.writeFile(path, data);
          return { data, path };
        }));
        const results = await Promise.all(files.map((f) => hashers.hash(f.path)));
        for (const [n, f] of files.entries()) {
          assert.deepEqual(results[n], { size: f.data.length, md5: md5(f.data) }, f.path);
        }
        // One file alone still gets its answer (the lanes stop waiting for company), small or
        // large (hashed alone with node:crypto, faster than one lane of four).
        for (const n of [3, 40]) {
          assert.deepEqual(await hashers.hash(files[n]!.path), {
            size: files[n]!.data.length,
            md5: md5(files[n]!.data),
          });
        }
        // A file that cannot be read rejects; the others are not held up by it.
        await assert.rejects(hashers.hash(join(dir, "missing")), /NotFound|No such file/);
        // Aborting rejects with the reason.
        const abort = new AbortController();
        const aborted = hashers.hash(files[40]!.path, abort.signal);
        abort.abort(new Error("stop"));
        await assert.rejects(aborted, /stop/);
      } finally {
        hashers.close();
      }
      await assert.rejects(hashers.hash(join(dir, "f0")), /cancelled/);
    });
  });
}
