import assert from "node:assert/strict";
import {
  type HashLane,
  MAX_LANES,
  SLOT_BYTES,
  StreamHasher,
} from "../../src/lakefs/_stream_hasher.ts";
import { md5Of, sha256Of } from "./_helpers.ts";

/** Deterministic pseudo-random bytes. */
function bytesOf(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761 >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** The bytes the lane handed to the writer of the object fed last. */
const writtenOf = new WeakMap<HashLane, () => Uint8Array[]>();

function writtenBytes(lane: HashLane): Uint8Array {
  const parts = writtenOf.get(lane)!();
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * Begins an object and feeds `data` into the lane in reads of the sizes `step` gives (as a
 * socket would); what the lane hands to its writer is checked to be `data`, in order, once
 * the object ends.
 */
async function feed(lane: HashLane, data: Uint8Array, step: (i: number) => number) {
  const written: Uint8Array[] = [];
  lane.begin((bytes) => written.push(bytes.slice()));
  writtenOf.set(lane, () => written);
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const space = await lane.space();
    const n = Math.min(space.length, data.length - at, Math.max(1, step(i)));
    space.set(data.subarray(at, at + n));
    lane.filled(n);
    at += n;
  }
}

/**
 * A hasher of `lanes` lanes for `fn`. With fewer than four lanes taken an object is hashed
 * alone (node:crypto); `simd` takes three more lanes, left idle, so the objects of `fn`'s
 * lanes go through the SIMD module (each round then waits for the idle ones, bounded).
 */
function withHasher(
  lanes: number,
  fn: (hasher: StreamHasher) => Promise<void>,
  options: { simd?: boolean; sha256?: boolean } = {},
) {
  return async () => {
    const hasher = StreamHasher.create(lanes + (options.simd ? 3 : 0), {
      sha256: options.sha256 === true,
    });
    assert.ok(hasher, "the stream hasher runs on this host (WebAssembly SIMD, workers)");
    try {
      if (options.simd) { for (let i = 0; i < 3; i++) hasher.lane(); }
      await fn(hasher);
    } finally {
      hasher.close();
    }
  };
}

/** The tests run both ways of hashing a lane. */
const WAYS = [["alone", {}], ["in the SIMD lanes", { simd: true }]] as const;

const LENGTHS = [
  0,
  1,
  55,
  56,
  63,
  64,
  65,
  127,
  128,
  SLOT_BYTES - 1,
  SLOT_BYTES,
  SLOT_BYTES + 1,
  3 * SLOT_BYTES + 17,
  1_000_003,
];

for (const [way, options] of WAYS) {
  Deno.test(
    `stream hasher (${way}): every length at the MD5 block's and the slot's edges hashes as node:crypto does, one lane, objects queued`,
    withHasher(1, async (hasher) => {
      const lane = hasher.lane()!;
      const ends: Promise<unknown>[] = [];
      const expected: unknown[] = [];
      for (const [k, length] of LENGTHS.entries()) {
        const data = bytesOf(length, k + 1);
        await feed(lane, data, (i) => 1 + ((i * 7919 + k) % 70_000));
        // The next object begins while this one still hashes.
        ends.push(lane.end());
        assert.deepEqual(writtenBytes(lane), data, "the writer gets the bytes in order");
        expected.push({ size: length, md5: md5Of(data) });
      }
      assert.deepEqual(await Promise.all(ends), expected);
    }, options),
  );
}

Deno.test(
  "stream hasher: thirteen lanes at once (two module calls a round), lengths and reads all different",
  withHasher(13, async (hasher) => {
    const results = await Promise.all(
      Array.from({ length: 13 }, async (_, l) => {
        const lane = hasher.lane()!;
        const out: { got: unknown; want: unknown }[] = [];
        for (let k = 0; k < 4; k++) {
          const length = (l * 104_729 + k * 65_537) % (4 * SLOT_BYTES) + k;
          const data = bytesOf(length, l * 10 + k + 1);
          await feed(lane, data, (i) => 1_000 + ((i * 104_729 + l) % 90_000));
          out.push({ got: await lane.end(), want: { size: length, md5: md5Of(data) } });
        }
        hasher.release(lane);
        return out;
      }),
    );
    for (const lane of results) for (const { got, want } of lane) assert.deepEqual(got, want);
  }),
);

for (const [way, options] of WAYS) {
  Deno.test(
    `stream hasher (${way}): an object given up is never answered; the one ended before it and the next are`,
    withHasher(2, async (hasher) => {
      const lane = hasher.lane()!;
      const first = bytesOf(2 * SLOT_BYTES + 5, 1);
      await feed(lane, first, () => 50_000);
      const firstEnd = lane.end();
      // Two full slots and a part of a third, then given up.
      await feed(lane, bytesOf(2 * SLOT_BYTES + 100, 2), () => 40_000);
      lane.abort();
      const third = bytesOf(SLOT_BYTES + 3, 3);
      await feed(lane, third, () => 30_000);
      assert.deepEqual(await lane.end(), { size: third.length, md5: md5Of(third) });
      assert.deepEqual(await firstEnd, { size: first.length, md5: md5Of(first) });
      // An empty object is answered without the worker; an end without an object is refused.
      lane.begin();
      assert.deepEqual(await lane.end(), { size: 0, md5: md5Of(new Uint8Array(0)) });
      await assert.rejects(lane.end(), /without begin/);
    }, options),
  );
}

Deno.test(
  "stream hasher: a lane still reading does not hold another's answer in the SIMD lanes past the wait",
  withHasher(2, async (hasher) => {
    const slow = hasher.lane()!;
    const fast = hasher.lane()!;
    // The slow lane has an object open and never fills its slot.
    slow.begin();
    (await slow.space()).set([1, 2, 3]);
    slow.filled(3);
    const data = bytesOf(3 * SLOT_BYTES, 9);
    await feed(fast, data, () => SLOT_BYTES);
    const deadline = AbortSignal.timeout(5_000);
    const answer = await Promise.race([
      fast.end(),
      new Promise((_, reject) => deadline.addEventListener("abort", () => reject(deadline.reason))),
    ]);
    assert.deepEqual(answer, { size: data.length, md5: md5Of(data) });
    slow.abort();
  }, { simd: true }),
);

Deno.test("stream hasher: close rejects what is pending; later calls throw", async () => {
  const hasher = StreamHasher.create(1);
  assert.ok(hasher);
  const lane = hasher.lane()!;
  // Slots handed to the worker and not yet hashed: the end waits for it, then the close.
  await feed(lane, bytesOf(2 * SLOT_BYTES, 4), () => SLOT_BYTES);
  const pendingEnd = lane.end();
  hasher.close();
  await assert.rejects(pendingEnd, /cancelled/);
  assert.throws(() => lane.begin(), /cancelled/);
  assert.throws(() => hasher.lane(), /cancelled/);
});

Deno.test("stream hasher: space() or filled() without begin(), or a filled() past the slot, is refused", () => {
  const hasher = StreamHasher.create(1);
  assert.ok(hasher);
  try {
    const lane = hasher.lane()!;
    assert.throws(() => lane.filled(1), /without begin/);
    assert.throws(() => lane.space(), /without begin/);
    lane.begin();
    lane.space();
    assert.throws(() => lane.filled(SLOT_BYTES + 1), /do not fit/);
    assert.throws(() => lane.filled(0), /do not fit/);
    lane.abort();
  } finally {
    hasher.close();
  }
});

Deno.test(
  "stream hasher: the writer's error is the call's; the object is dropped and the lane goes on",
  withHasher(1, async (hasher) => {
    const lane = hasher.lane()!;
    lane.begin(() => {
      throw new Error("disk full");
    });
    (await lane.space()).set([1, 2, 3]);
    lane.filled(3);
    await assert.rejects(lane.end(), /disk full/);
    const data = bytesOf(SLOT_BYTES + 9, 5);
    await feed(lane, data, () => 4096);
    assert.deepEqual(await lane.end(), { size: data.length, md5: md5Of(data) });
    lane.begin(() => {
      throw new Error("disk full");
    });
    const space = await lane.space();
    assert.throws(() => lane.filled(space.length), /disk full/);
    lane.abort();
  }),
);

Deno.test("stream hasher: no lane once every one is taken, one again once given back; at most MAX_LANES", () => {
  assert.throws(() => StreamHasher.create(MAX_LANES + 1), /from 1 to 16/);
  const hasher = StreamHasher.create(2);
  assert.ok(hasher);
  try {
    const first = hasher.lane();
    const second = hasher.lane();
    assert.ok(first !== undefined && second !== undefined && first !== second);
    assert.equal(hasher.lane(), undefined);
    hasher.release(first);
    assert.equal(hasher.lane(), first);
  } finally {
    hasher.close();
  }
});

for (const [way, options] of WAYS) {
  Deno.test(
    `stream hasher (${way}): with sha256, every length's SHA-256 too, as node:crypto gives it; an object given up mid-way leaves the next one's digests whole`,
    withHasher(1, async (hasher) => {
      const lane = hasher.lane()!;
      const ends: Promise<unknown>[] = [];
      const expected: unknown[] = [];
      for (const [k, length] of LENGTHS.entries()) {
        const data = bytesOf(length, 100 + k);
        if (k % 4 === 1) {
          // Given up after some slots: its bytes never reach a digest.
          await feed(lane, bytesOf(2 * SLOT_BYTES + 5, k), (i) => 4096 + i);
          lane.abort();
        }
        await feed(lane, data, (i) => 1 + ((i * 104_729 + k) % 90_000));
        ends.push(lane.end());
        expected.push({ size: length, md5: md5Of(data), sha256: sha256Of(data) });
      }
      assert.deepEqual(await Promise.all(ends), expected);
    }, { ...options, sha256: true }),
  );
}
