/**
 * Content-addressed blob storage of the demo lakeFS server: files named by the hex MD5 of
 * their content under `<root>/blobs/ab/abcd...`. Uploads stream to a temporary file while the
 * MD5 is computed incrementally, then are renamed into place, so no upload is ever held in
 * memory whole.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";

/** What {@linkcode BlobStore.put} stored. */
export interface StoredBlob {
  /** Hex MD5 of the content (also the blob's key). */
  checksum: string;
  size: number;
}

/** Files by content hash under one directory. */
export class BlobStore {
  /** The directory the blobs live in. */
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  /** Creates the directories. */
  async init(): Promise<void> {
    await Deno.mkdir(join(this.root, "blobs"), { recursive: true });
    // Uploads cut short by a previous run leave partial files here.
    await Deno.remove(join(this.root, "tmp"), { recursive: true }).catch(() => {});
    await Deno.mkdir(join(this.root, "tmp"), { recursive: true });
  }

  /** Path of a blob by checksum. */
  pathOf(checksum: string): string {
    if (!/^[0-9a-f]{32}$/.test(checksum)) throw new RangeError(`bad blob key ${checksum}`);
    return join(this.root, "blobs", checksum.slice(0, 2), checksum);
  }

  /** Streams `body` into the store; returns its checksum and size. */
  async put(body: AsyncIterable<Uint8Array>): Promise<StoredBlob> {
    const tmp = join(this.root, "tmp", crypto.randomUUID());
    const file = await Deno.open(tmp, { write: true, createNew: true });
    const hash = createHash("md5");
    let size = 0;
    let closed = false;
    try {
      for await (const chunk of body) {
        hash.update(chunk);
        size += chunk.byteLength;
        let offset = 0;
        while (offset < chunk.byteLength) offset += await file.write(chunk.subarray(offset));
      }
      file.close();
      closed = true;
      const checksum = hash.digest("hex");
      const target = this.pathOf(checksum);
      await Deno.mkdir(join(this.root, "blobs", checksum.slice(0, 2)), { recursive: true });
      await Deno.rename(tmp, target);
      return { checksum, size };
    } catch (error) {
      if (!closed) file.close();
      await Deno.remove(tmp).catch(() => {});
      throw error;
    }
  }

  /** Opens a blob for reading `[start, end]` (inclusive; whole file by default). */
  async open(checksum: string, start = 0, end?: number): Promise<ReadableStream<Uint8Array>> {
    const file = await Deno.open(this.pathOf(checksum), { read: true });
    if (start > 0) await file.seek(start, Deno.SeekMode.Start);
    if (end === undefined) return file.readable;
    let remaining = end - start + 1;
    const reader = file.readable.getReader();
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (remaining <= 0) {
          controller.close();
          await reader.cancel().catch(() => {});
          return;
        }
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          return;
        }
        const part = value.byteLength > remaining ? value.subarray(0, remaining) : value;
        remaining -= part.byteLength;
        controller.enqueue(part);
      },
      async cancel(reason) {
        await reader.cancel(reason).catch(() => {});
      },
    });
  }
}
