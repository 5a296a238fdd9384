/**
 * Streaming extraction of one part of a `multipart/form-data` body, so the demo lakeFS server
 * can accept multipart uploads (the `content` part, as lakeFS does) without buffering a file.
 *
 * @module
 */
import { Buffer } from "node:buffer";

/** Headers of the part found. */
export interface PartInfo {
  contentType: string | undefined;
  filename: string | undefined;
}

/** Thrown for a body that is not valid multipart. */
export class MultipartError extends Error {
  override name = "MultipartError";
}

/** Reads the `boundary` parameter of a multipart content type, or `undefined`. */
export function multipartBoundary(contentType: string | null): string | undefined {
  if (contentType === null) return undefined;
  if (!/^multipart\/form-data\b/i.test(contentType.trim())) return undefined;
  const match = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return match?.[1] ?? match?.[2];
}

const encoder = new TextEncoder();
const HEADER_END = encoder.encode("\r\n\r\n");
const decoder = new TextDecoder();

/**
 * Finds the first part named `name` in a multipart body and returns its info and an async
 * iterable of its content. Returns `undefined` when the body has no such part. The content
 * must be consumed before the rest of the body is.
 */
export async function findPart(
  body: ReadableStream<Uint8Array>,
  boundary: string,
  name: string,
): Promise<{ info: PartInfo; content: AsyncIterable<Uint8Array> } | undefined> {
  const reader = body.getReader();
  // Treat the body as if it began with CRLF so the first boundary looks like all others. A
  // Buffer for its native indexOf; its slice is a view, so parts are copied into their own arrays.
  let buffer = Buffer.from("\r\n");
  const delimiter = encoder.encode(`\r\n--${boundary}`);
  let ended = false;

  const more = async (): Promise<boolean> => {
    if (ended) return false;
    const { done, value } = await reader.read();
    if (done) {
      ended = true;
      return false;
    }
    buffer = Buffer.concat([buffer, value]);
    return true;
  };

  // Skips to just after the next delimiter; false at the end of the body.
  const skipToDelimiter = async (): Promise<boolean> => {
    while (true) {
      const at = buffer.indexOf(delimiter);
      if (at >= 0) {
        buffer = buffer.subarray(at + delimiter.length);
        return true;
      }
      buffer = buffer.subarray(Math.max(0, buffer.length - delimiter.length + 1));
      if (!(await more())) return false;
    }
  };

  if (!(await skipToDelimiter())) throw new MultipartError("multipart: no boundary found");
  while (true) {
    while (buffer.length < 2) {
      if (!(await more())) throw new MultipartError("multipart: truncated body");
    }
    if (buffer[0] === 0x2d && buffer[1] === 0x2d) { // "--": the closing delimiter
      await reader.cancel().catch(() => {});
      return undefined;
    }
    // Headers end at CRLF CRLF (the line break after the delimiter comes first).
    let headerEnd = buffer.indexOf(HEADER_END);
    while (headerEnd < 0) {
      if (buffer.length > 64 * 1024) throw new MultipartError("multipart: part headers too long");
      if (!(await more())) throw new MultipartError("multipart: truncated part headers");
      headerEnd = buffer.indexOf(HEADER_END);
    }
    const part = partHeaders(decoder.decode(buffer.subarray(0, headerEnd)));
    buffer = buffer.subarray(headerEnd + 4);
    if (part.name !== name) {
      if (!(await skipToDelimiter())) throw new MultipartError("multipart: truncated body");
      continue;
    }
    const info: PartInfo = { contentType: part.contentType, filename: part.filename };
    const content = async function* (): AsyncGenerator<Uint8Array> {
      while (true) {
        const at = buffer.indexOf(delimiter);
        if (at >= 0) {
          if (at > 0) yield new Uint8Array(buffer.subarray(0, at));
          buffer = buffer.subarray(at + delimiter.length);
          await reader.cancel().catch(() => {});
          return;
        }
        const keep = Math.min(buffer.length, delimiter.length - 1);
        const emit = buffer.length - keep;
        if (emit > 0) {
          yield new Uint8Array(buffer.subarray(0, emit));
          buffer = buffer.subarray(emit);
        }
        if (!(await more())) throw new MultipartError("multipart: truncated part content");
      }
    };
    return { info, content: content() };
  }
}

/** A part's name, content type and file name, from its header lines. */
function partHeaders(text: string): PartInfo & { name: string | undefined } {
  const headers = new Map<string, string>();
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) {
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
  }
  const disposition = headers.get("content-disposition") ?? "";
  return {
    name: /;\s*name="([^"]*)"/i.exec(disposition)?.[1] ??
      /;\s*name=([^;\s]+)/i.exec(disposition)?.[1],
    contentType: headers.get("content-type"),
    filename: /;\s*filename="([^"]*)"/i.exec(disposition)?.[1],
  };
}
