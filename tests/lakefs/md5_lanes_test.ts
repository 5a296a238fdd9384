import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { FileHashers } from "../../src/lakefs/_file_hasher.ts";
import {
  MD5_INIT,
  MD5_LANES,
  md5LanesStateBytes,
  md5LanesWasmBytes,
} from "../../src/lakefs/_md5_lanes.ts";
import { md5Of, sha256Of, withTempDir } from "./_helpers.ts";

const PAGES = 256;

/**
 * MD5 of `4 * groups` inputs through the module alone: each padded as MD5 pads, the lanes run
 * for the blocks they have in common, then a lane that ran out idles on a block nobody reads.
 */
function md5Lanes(inputs: Uint8Array[], groups = MD5_LANES / 4): string[] {
  assert.equal(inputs.length, 4 * groups);
  const memory = new WebAssembly.Memory({ initial: PAGES, maximum: PAGES, shared: true });
  const { md5lanes: run } = new WebAssembly.Instance(
    new WebAssembly.Module(md5LanesWasmBytes(PAGES, groups)),
    { env: { memory } },
  ).exports as { md5lanes: (...args: number[]) => void };
  const bytes = new Uint8Array(memory.buffer);
  const words = new Uint32Array(memory.buffer);
  const STATE = 0;
  // Lane i's word w (A..D) in the state: group i >> 2, lane i & 3 of vector w.
  const at = (lane: number, w: number) => STATE / 4 + (lane >> 2) * 16 + w * 4 + (lane & 3);
  let next = md5LanesStateBytes(groups) + 1024;
  const lanes = inputs.map((input) => {
    const blocks = Math.floor((input.length + 8) / 64) + 1;
    const start = next;
    bytes.set(input, start);
    bytes[start + input.length] = 0x80;
    const view = new DataView(memory.buffer, start + blocks * 64 - 8, 8);
    view.setUint32(0, (input.length * 8) % 2 ** 32, true);
    view.setUint32(4, Math.floor((input.length * 8) / 2 ** 32), true);
    next += blocks * 64 + 64;
    return { next: start, left: blocks };
  });
  const idle = next;
  for (let lane = 0; lane < lanes.length; lane++) {
    for (let w = 0; w < 4; w++) words[at(lane, w)] = MD5_INIT[w]!;
  }
  // Unequal lengths: each call runs the blocks every lane still has; finished lanes idle.
  const saved = new Uint32Array(memory.buffer.byteLength / 4);
  while (lanes.some((lane) => lane.left > 0)) {
    const n = Math.min(...lanes.filter((lane) => lane.left > 0).map((lane) => lane.left));
    saved.set(words.subarray(0, 16 * groups));
    run(STATE, ...lanes.map((lane) => lane.left > 0 ? lane.next : idle), n);
    for (const [i, lane] of lanes.entries()) {
      if (lane.left > 0) {
        lane.next += n * 64;
        lane.left -= n;
      } else {
        for (let w = 0; w < 4; w++) words[at(i, w)] = saved[at(i, w)]!;
      }
    }
  }
  return lanes.map((_, lane) => {
    let hex = "";
    for (let w = 0; w < 4; w++) {
      const word = words[at(lane, w)]!;
      for (let b = 0; b < 4; b++) hex += ((word >>> (b * 8)) & 0xff).toString(16).padStart(2, "0");
    }
    return hex;
  });
}

Deno.test("md5 lanes: every length 0..300 and large ones, unequal across lanes, as node:crypto", () => {
  // Every lane a different length per call: lengths spread over 0..300 by lane.
  for (let i = 0; i <= 300; i++) {
    const inputs = Array.from(
      { length: MD5_LANES },
      (_, lane) => randomBytes((i * (2 * lane + 1) + lane * 37) % 301),
    );
    assert.deepEqual(md5Lanes(inputs), inputs.map(md5Of), `lengths ${inputs.map((x) => x.length)}`);
  }
  const large = Array.from(
    { length: MD5_LANES },
    (_, lane) => randomBytes([1024 * 1024 + 13, 64, 300_001, 0][lane % 4]! + lane),
  );
  assert.deepEqual(md5Lanes(large), large.map(md5Of));
});

Deno.test("md5 lanes: one to four groups of four lanes, as node:crypto", () => {
  for (const groups of [1, 2, 3, 4]) {
    const inputs = Array.from({ length: 4 * groups }, (_, lane) => randomBytes(lane * 97 + 5));
    assert.deepEqual(md5Lanes(inputs, groups), inputs.map(md5Of), `groups ${groups}`);
  }
  assert.throws(() => md5LanesWasmBytes(PAGES, 0), RangeError);
});

const MODES = [
  { name: "many-lane MD5 in a worker", options: {} },
  { name: "node:crypto in a worker", options: { simd: false } },
  { name: "node:crypto on the calling thread", options: { workers: false } },
];

for (
  const [{ name, options }, sha256] of MODES.flatMap((mode) =>
    [[mode, false], [mode, true]] as const
  )
) {
  Deno.test(`FileHashers (${name}${sha256 ? ", SHA-256 too" : ""}): many files of any length read back at once, as node:crypto`, async () => {
    const expected = (data: Uint8Array) => ({
      size: data.length,
      md5: md5Of(data),
      ...(sha256 ? { sha256: sha256Of(data) } : {}),
    });
    await withTempDir(async (dir) => {
      const hashers = new FileHashers({ ...options, sha256 });
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
          assert.deepEqual(results[n], expected(f.data), f.path);
        }
        // One file alone still gets its answer (the lanes stop waiting for company), small or
        // large (hashed alone with node:crypto, faster than one lane of four).
        for (const n of [3, 40]) {
          assert.deepEqual(await hashers.hash(files[n]!.path), expected(files[n]!.data));
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

Deno.test("FileHashers: start() runs the first worker before any file, once; the file then hashed by it", async () => {
  await withTempDir(async (dir) => {
    const data = randomBytes(700_001);
    const path = join(dir, "f");
    await Deno.writeFile(path, data);
    const hashers = new FileHashers();
    try {
      assert.equal(hashers.workers, 0);
      hashers.start();
      assert.equal(hashers.workers, 1);
      hashers.start();
      assert.equal(hashers.workers, 1, "a second start() starts no second worker");
      hashers.flush();
      assert.deepEqual(await hashers.hash(path), { size: data.length, md5: md5Of(data) });
      assert.equal(hashers.workers, 1, "the file went to the started worker");
    } finally {
      hashers.close();
    }
    assert.equal(hashers.workers, 0);
    hashers.start();
    assert.equal(hashers.workers, 0, "closed hashers start nothing");
    // Without workers, start() is a no-op and files are still hashed (on this thread).
    const here = new FileHashers({ workers: false });
    try {
      here.start();
      assert.equal(here.workers, 0);
      assert.deepEqual(await here.hash(path), { size: data.length, md5: md5Of(data) });
    } finally {
      here.close();
    }
  });
});

/** `promise`, or a rejection naming `what` once `ms` pass (a test fails instead of hanging). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("FileHashers: full lanes run at once; fewer files wait for company until a flush", async () => {
  await withTempDir(async (dir) => {
    // Files left short of the lanes would wait ten minutes: only full lanes or a flush settle
    // them within the test's deadlines.
    const hashers = new FileHashers({ waitMs: 600_000 });
    try {
      const files = await Promise.all(
        Array.from({ length: 2 * MD5_LANES + 3 }, async (_, n) => {
          // One size: the lanes of a set finish together (a lane finishing early waits for a
          // file to take its place, the others with it).
          const data = randomBytes(300_001);
          data[0] = n;
          const path = join(dir, `f${n}`);
          await Deno.writeFile(path, data);
          return { path, expected: { size: data.length, md5: md5Of(data) } };
        }),
      );
      const check = async (some: typeof files, what: string) => {
        const results = await within(
          Promise.all(some.map((f) => hashers.hash(f.path))),
          20_000,
          what,
        );
        assert.deepEqual(results, some.map((f) => f.expected), what);
      };
      // As many files as lanes: hashed without a flush.
      await check(files.slice(0, MD5_LANES), "a full set of lanes");
      // Fewer: a flush hashes them without waiting for more.
      const short = check(files.slice(MD5_LANES, MD5_LANES + 3), "three files after a flush");
      hashers.flush();
      await short;
      // The flush lasts until the worker is idle; the next files wait again, and fill the lanes.
      await check(files.slice(MD5_LANES + 3), "a second full set");
      const last = check(files.slice(0, 1), "one file after a second flush");
      hashers.flush();
      await last;
    } finally {
      hashers.close();
    }
  });
  assert.throws(() => new FileHashers({ waitMs: -1 }), RangeError);
});
