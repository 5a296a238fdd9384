/**
 * GETs of small bodies from one plain-HTTP server over kept-alive HTTP/1.1 connections
 * (`Deno.connect`), for the thousands of small object reads of a download. `fetch` builds a
 * Request, a Headers, a Response and a body stream per request, and settles several ops and
 * promises for each: 1,000 reads of 4 KiB objects from a local lakeFS took about 130-190 ms
 * of CPU through it and 60-80 ms this way (one write and usually one read per request), and
 * the download of a `perago run` is bound by that CPU.
 *
 * Only what such reads need: `GET`, a status line, headers, a body framed by
 * `Content-Length`, `Transfer-Encoding: chunked` or the connection's end, bounded in size.
 * What could make one answer read as two is refused (a protocol error, the connection
 * closed): other transfer codings, a length beside `chunked`, lengths that disagree, heads,
 * chunk lines and trailers past their bounds. An idle connection is read while it waits:
 * bytes or a close arriving before the next request was sent drop it, so nothing left over
 * from one answer is read as the next. Bytes of a head are no progress (`onProgress`).
 * No TLS, no proxies, no redirects, no compression (no `Accept-Encoding` is sent):
 * {@linkcode Http1Connections.for} gives `undefined` where `fetch` must be used instead.
 * The connections live until {@linkcode Http1Connections.close} (a batch of reads opens one
 * set and closes it when done), so nothing stays open behind the caller's back.
 *
 * @module
 */
import { concatBytes } from "./bytes.ts";

/** An answer: status, headers and the body, whole or cut at the caller's limit. */
export interface Http1Answer {
  readonly status: number;
  readonly statusText: string;
  /** Header names in lower case; a repeated header's values joined by `", "`. */
  readonly headers: ReadonlyMap<string, string>;
  /** The body; at most `maxBodyBytes` bytes (see {@linkcode Http1GetOptions}). */
  readonly body: Uint8Array<ArrayBuffer>;
}

/** Options of {@linkcode Http1Connections.get}. */
export interface Http1GetOptions {
  /** Aborting closes the connection; the call rejects with the signal's reason. */
  readonly signal: AbortSignal;
  /**
   * The most body bytes kept: a longer body is cut there (and its connection closed), so a
   * caller passing its limit plus one sees the body is too long without holding it whole.
   */
  readonly maxBodyBytes: number;
  /**
   * Called when the head is complete and whenever body bytes arrive (to restart an idle
   * timeout). Not for bytes of the head: a server trickling it byte by byte must not keep a
   * request alive, any more than `fetch`, which resolves once the head is whole.
   */
  readonly onProgress?: () => void;
}

/**
 * Where {@linkcode Http1Connections.getInto} streams a body: the caller's own memory, read
 * into straight from the socket (no copy, no chunk objects).
 */
export interface Http1BodyTarget {
  /**
   * A view the next bytes are read into (not empty); a promise when the target must wait
   * for room (back-pressure). Only the first `n` bytes are written, `n` as told to `filled`.
   */
  space(): Uint8Array | Promise<Uint8Array>;
  /** `n` bytes (at least one) were read into the start of the view `space` gave last. */
  filled(n: number): void | Promise<void>;
}

/** Options of {@linkcode Http1Connections.getInto}. */
export interface Http1StreamOptions {
  /** Aborting closes the connection; the call rejects with the signal's reason. */
  readonly signal: AbortSignal;
  /** As {@linkcode Http1GetOptions.onProgress}: the head, then each read of body bytes. */
  readonly onProgress?: () => void;
  /** The most bytes kept of a body not streamed (any status but 200). */
  readonly maxBodyBytes: number;
  /**
   * The target of a 200 answer's body framed by `Content-Length` (told here, with the
   * headers), called once the head is read and before any body byte is; `undefined` leaves
   * the body unread (the answer is then not `streamed`).
   */
  readonly target: (
    length: number,
    headers: ReadonlyMap<string, string>,
  ) => Http1BodyTarget | undefined | Promise<Http1BodyTarget | undefined>;
}

/**
 * An answer of {@linkcode Http1Connections.getInto}: a 200 whose body went to the target
 * (`streamed`, `body` empty), a 200 not framed by `Content-Length` or refused by the target
 * (not `streamed`, its body not read and its connection closed: the caller reads it another
 * way), or another status with its body in `body`.
 */
export interface Http1StreamAnswer extends Http1Answer {
  readonly streamed: boolean;
}

/** Thrown when the server's answer is not HTTP/1.x this client can read. */
export class Http1ProtocolError extends Error {
  override name = "Http1ProtocolError";
}

/**
 * The most bytes of status lines and headers accepted for one request, interim (1xx) answers
 * included; also the bound of a chunked body's trailers.
 */
const MAX_HEAD_BYTES = 64 * 1024;
/** The longest chunk-size line (with its extensions) accepted, bytes. */
const MAX_CHUNK_LINE_BYTES = 1024;
/** Error answers' bodies are kept up to this size whatever the caller's limit. */
const MIN_BODY_LIMIT = 64 * 1024;
/** Connections kept idle for the next request. */
const MAX_IDLE = 64;

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/**
 * The environment variables that make `fetch` use a proxy for plain HTTP: a process that may
 * not read them (`--allow-env` without them) always uses `fetch`.
 */
export const PROXY_ENV_VARS: readonly string[] = Object.freeze([
  "HTTP_PROXY",
  "http_proxy",
  "ALL_PROXY",
  "all_proxy",
]);

/**
 * Whether a proxy for plain HTTP is set in this process's environment (which `fetch`
 * honours); `undefined` when the environment may not be read.
 */
export function proxyInEnvironment(): boolean | undefined {
  try {
    return PROXY_ENV_VARS.some((name) => (Deno.env.get(name) ?? "").trim() !== "");
  } catch {
    return undefined;
  }
}

/**
 * Kept-alive HTTP/1.1 connections to one server; each request takes an idle connection or
 * opens one, and gives it back once its answer was read whole.
 *
 * @example
 * ```ts ignore
 * const connections = Http1Connections.for(new URL("http://127.0.0.1:8000"));
 * try {
 *   const answer = await connections!.get("/a", {}, {
 *     signal: AbortSignal.timeout(5_000), maxBodyBytes: 1024,
 *   });
 *   answer.status; // 200
 * } finally {
 *   connections?.close();
 * }
 * ```
 */
export class Http1Connections {
  /** `scheme://host:port` of the server. */
  readonly origin: string;
  readonly #hostname: string;
  readonly #port: number;
  readonly #host: string;
  readonly #idle: IdleConn[] = [];
  readonly #open = new Set<Deno.Conn>();
  #closed = false;

  private constructor(url: URL) {
    this.origin = url.origin;
    // `URL.hostname` keeps an IPv6 address in brackets; `Deno.connect` takes it bare.
    this.#hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
    this.#port = url.port === "" ? 80 : Number(url.port);
    this.#host = url.host;
  }

  /**
   * Connections to the server of `url`, or `undefined` where `fetch` must carry the requests:
   * not `http:`, or a proxy set in the environment (which `fetch` honours), or the
   * environment not readable (then a proxy cannot be ruled out). `noProxy` is what a process
   * that could read the environment found there (see {@linkcode proxyInEnvironment}), for one
   * that cannot: it replaces this process's own look.
   */
  static for(url: URL, options: { noProxy?: boolean } = {}): Http1Connections | undefined {
    if (url.protocol !== "http:") return undefined;
    const noProxy = options.noProxy ?? proxyInEnvironment() === false;
    return noProxy ? new Http1Connections(url) : undefined;
  }

  /**
   * GETs `target` (the path and query on this server, already encoded, e.g. `/a?b=c`) with
   * `headers` (names and values without line breaks).
   * A kept-alive connection the server closed meanwhile is replaced once, transparently (a
   * GET can be sent again); any other failure rejects (the caller's retries decide).
   *
   * @throws {Http1ProtocolError} for an answer that is not readable HTTP/1.x.
   */
  async get(
    target: string,
    headers: Readonly<Record<string, string>>,
    options: Http1GetOptions,
  ): Promise<Http1Answer> {
    return await this.#request(
      target,
      headers,
      options.signal,
      (conn, request, idle) => exchange(conn, request, options, idle),
    );
  }

  /**
   * GETs `target` as {@linkcode get} does, streaming a 200 answer's body framed by
   * `Content-Length` into `options.target` straight from the socket: exactly the announced
   * bytes are read (nothing past the body), each read into a view the target gives. A
   * connection ending early fails the call (never a short body); so does the target's own
   * error, as is. A 200 framed otherwise (chunked, or ended by the close) is not read (see
   * {@linkcode Http1StreamAnswer}); any other status is read whole up to `maxBodyBytes`.
   *
   * @throws {Http1ProtocolError} for an answer that is not readable HTTP/1.x.
   */
  async getInto(
    target: string,
    headers: Readonly<Record<string, string>>,
    options: Http1StreamOptions,
  ): Promise<Http1StreamAnswer> {
    return await this.#request(
      target,
      headers,
      options.signal,
      (conn, request, idle) => exchangeInto(conn, request, options, idle),
    );
  }

  async #request<A>(
    target: string,
    headers: Readonly<Record<string, string>>,
    signal: AbortSignal,
    exchangeOn: (
      conn: Deno.Conn,
      request: Uint8Array,
      idle: IdleConn | undefined,
    ) => Promise<{ answer: A; reusable: boolean }>,
  ): Promise<A> {
    const request = encoder.encode(this.#requestHead(target, headers));
    for (let retried = false;; retried = true) {
      signal.throwIfAborted();
      if (this.#closed) throw new Error("HTTP connections closed");
      const reused = retried ? undefined : await this.#takeIdle();
      const conn = reused?.conn ?? await this.#connect(signal);
      const onAbort = () => this.#drop(conn);
      signal.addEventListener("abort", onAbort, { once: true });
      if (signal.aborted) onAbort();
      try {
        const exchanged = await exchangeOn(conn, request, reused);
        if (exchanged.reusable && !this.#closed && this.#idle.length < MAX_IDLE) {
          this.#keepIdle(conn);
        } else {
          this.#drop(conn);
        }
        return exchanged.answer;
      } catch (error) {
        this.#drop(conn);
        if (signal.aborted) throw signal.reason;
        // The server may close an idle connection just as it is reused: nothing of the
        // answer arrived, so the request was not handled; once more on a new connection.
        if (reused !== undefined && error instanceof NothingReceived) continue;
        throw error instanceof NothingReceived ? error.cause : error;
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
    }
  }

  /** Closes every connection; requests still running reject. */
  close(): void {
    this.#closed = true;
    this.#idle.length = 0;
    for (const conn of [...this.#open]) this.#drop(conn);
  }

  #requestHead(target: string, headers: Readonly<Record<string, string>>): string {
    // A line break in the target or a header would start another header or request; white
    // space in the target would end it early.
    const unsafe = (text: string) => /[\r\n\0]/.test(text);
    if (!target.startsWith("/") || /[\s\0]/.test(target)) {
      throw new TypeError(`HTTP request: an invalid target ${JSON.stringify(target)}`);
    }
    let head = `GET ${target} HTTP/1.1\r\nhost: ${this.#host}\r\n`;
    for (const [name, value] of Object.entries(headers)) {
      if (!TOKEN.test(name) || unsafe(value)) {
        throw new TypeError(`HTTP request: an invalid header ${JSON.stringify(name)}`);
      }
      head += `${name}: ${value}\r\n`;
    }
    return head + "\r\n";
  }

  async #connect(signal: AbortSignal): Promise<Deno.Conn> {
    const connecting = Deno.connect({ hostname: this.#hostname, port: this.#port });
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      const conn = await Promise.race([connecting, aborted]);
      this.#open.add(conn);
      return conn;
    } catch (error) {
      // Connected after all: closed at once.
      connecting.then((conn) => closeQuietly(conn), () => {});
      throw error;
    } finally {
      signal.removeEventListener("abort", onAbort!);
      aborted.catch(() => {});
    }
  }

  /**
   * Keeps a connection for the next request, reading it meanwhile: anything arriving before a
   * request was sent (bytes past the last answer's end, or the server's close) drops it, so
   * no stale bytes are ever read as the next answer. The read stays pending while all is
   * quiet; the next request on the connection takes it over as its first read.
   */
  #keepIdle(conn: Deno.Conn): void {
    const bytes = new Uint8Array(IDLE_READ_BYTES);
    const idle: IdleConn = { conn, bytes, read: conn.read(bytes), settled: false };
    const dropIfIdle = () => {
      idle.settled = true;
      if (this.#idle.includes(idle)) this.#drop(conn);
    };
    idle.read.then(dropIfIdle, dropIfIdle);
    this.#idle.push(idle);
  }

  /** An idle connection nothing arrived on, or `undefined`. */
  async #takeIdle(): Promise<IdleConn | undefined> {
    for (let idle = this.#idle.pop(); idle !== undefined; idle = this.#idle.pop()) {
      // A read that settled in the same turn as this call has its reaction still queued: one
      // tick lets it run, so what arrived before the request is seen as such.
      await undefined;
      if (!idle.settled) return idle;
      this.#drop(idle.conn);
    }
    return undefined;
  }

  #drop(conn: Deno.Conn): void {
    if (!this.#open.delete(conn)) return;
    const at = this.#idle.findIndex((idle) => idle.conn === conn);
    if (at !== -1) this.#idle.splice(at, 1);
    closeQuietly(conn);
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

/** An idle connection and the read pending on it (see `Http1Connections.#keepIdle`). */
interface IdleConn {
  readonly conn: Deno.Conn;
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly read: Promise<number | null>;
  /** Whether the read settled (set by its first reaction). */
  settled: boolean;
}

/** The size of the read pending on an idle connection: the head and body of a small answer. */
const IDLE_READ_BYTES = 16 * 1024;

/** The connection ended (or failed) before any byte of the answer arrived. */
class NothingReceived extends Error {
  constructor(cause: unknown) {
    super("the connection ended before an answer", { cause });
  }
}

/** A buffer filled by reads, grown on demand. */
class ReadBuffer {
  bytes: Uint8Array<ArrayBuffer>;
  length = 0;
  received = false;

  constructor(
    readonly conn: Deno.Conn,
    public onProgress: (() => void) | undefined,
    expectedBytes: number,
    /** The read already pending on a reused connection, taken as the first. */
    private pending: IdleConn | undefined,
  ) {
    // Room for the head and the body the caller expects, so one read usually takes all; a
    // reused connection's pending read already has its buffer (this answer's alone too).
    this.bytes = pending?.bytes ??
      new Uint8Array(Math.min(expectedBytes + 2048, 64 * 1024));
  }

  #grow(): void {
    const grown = new Uint8Array(this.bytes.length * 2);
    grown.set(this.bytes);
    this.bytes = grown;
  }

  /** Reads once more; `false` at the end of the stream. */
  async fill(): Promise<boolean> {
    if (this.length === this.bytes.length) this.#grow();
    let n: number | null;
    try {
      const pending = this.pending;
      if (pending !== undefined) {
        // The first read, into `this.bytes` (see the constructor).
        this.pending = undefined;
        n = await pending.read;
      } else {
        n = await this.conn.read(this.bytes.subarray(this.length));
      }
    } catch (error) {
      if (!this.received) throw new NothingReceived(error);
      throw error;
    }
    if (n === null) {
      if (!this.received) throw new NothingReceived(new Error("connection closed"));
      return false;
    }
    this.received = true;
    this.length += n;
    this.onProgress?.();
    return true;
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) written += await conn.write(data.subarray(written));
}

/** Sends one request and reads its answer; `reusable` when the connection can serve more. */
async function exchange(
  conn: Deno.Conn,
  request: Uint8Array,
  options: Http1GetOptions,
  idle: IdleConn | undefined,
): Promise<{ answer: Http1Answer; reusable: boolean }> {
  const buffer = new ReadBuffer(conn, undefined, options.maxBodyBytes, idle);
  const head = await sendAndReadHead(conn, request, buffer, options.onProgress);
  const limit = head.status === 200
    ? options.maxBodyBytes
    : Math.max(options.maxBodyBytes, MIN_BODY_LIMIT);
  const body = await readBody(buffer, head, limit);
  return {
    answer: {
      status: head.status,
      statusText: head.statusText,
      headers: head.headers,
      body: body.bytes,
    },
    reusable: body.complete && head.keepAlive && body.end === buffer.length,
  };
}

/**
 * {@linkcode exchange} streaming a 200 answer's body framed by `Content-Length` into the
 * caller's target (see `Http1Connections.getInto`).
 */
async function exchangeInto(
  conn: Deno.Conn,
  request: Uint8Array,
  options: Http1StreamOptions,
  idle: IdleConn | undefined,
): Promise<{ answer: Http1StreamAnswer; reusable: boolean }> {
  // The head alone is read into the buffer (and what arrives with it); the body goes to the
  // target.
  const buffer = new ReadBuffer(conn, undefined, 0, idle);
  const head = await sendAndReadHead(conn, request, buffer, options.onProgress);
  const answerOf = (body: Uint8Array<ArrayBuffer>, streamed: boolean): Http1StreamAnswer => ({
    status: head.status,
    statusText: head.statusText,
    headers: head.headers,
    body,
    streamed,
  });
  if (head.status !== 200) {
    const body = await readBody(buffer, head, Math.max(options.maxBodyBytes, MIN_BODY_LIMIT));
    return {
      answer: answerOf(body.bytes, false),
      reusable: body.complete && head.keepAlive && body.end === buffer.length,
    };
  }
  const length = framingLength(head);
  const target = length === undefined ? undefined : await options.target(length, head.headers);
  if (length === undefined || target === undefined) {
    return { answer: answerOf(new Uint8Array(0), false), reusable: false };
  }
  let at = head.end;
  let remaining = length;
  while (remaining > 0) {
    // Awaited only when the target waits: a read is a few microseconds, a turn of the loop
    // per await a visible part of them.
    const offered = target.space();
    const space = offered instanceof Uint8Array ? offered : await offered;
    if (space.length === 0) throw new RangeError("HTTP body target: an empty view");
    let n: number;
    if (at < buffer.length) {
      // Body bytes that arrived with the head.
      n = Math.min(space.length, buffer.length - at, remaining);
      space.set(buffer.bytes.subarray(at, at + n));
      at += n;
    } else {
      // Never past the announced end: the connection then holds nothing of this answer.
      const read = await conn.read(space.length > remaining ? space.subarray(0, remaining) : space);
      if (read === null) {
        throw new Http1ProtocolError(
          `HTTP answer: the connection ended after ${length - remaining} of ${length} body bytes`,
        );
      }
      n = read;
      options.onProgress?.();
    }
    const filling = target.filled(n);
    if (filling !== undefined) await filling;
    remaining -= n;
  }
  return {
    answer: answerOf(new Uint8Array(0), true),
    reusable: head.keepAlive && at === buffer.length,
  };
}

/** Sends the request and reads the final head (interim answers skipped). */
async function sendAndReadHead(
  conn: Deno.Conn,
  request: Uint8Array,
  buffer: ReadBuffer,
  onProgress: (() => void) | undefined,
): Promise<Head> {
  try {
    await writeAll(conn, request);
  } catch (error) {
    throw new NothingReceived(error);
  }
  let start = 0;
  for (;;) {
    const head = await readHead(buffer, start);
    // A GET asks for no upgrade: what follows a 101 is not HTTP.
    if (head.status === 101) {
      throw new Http1ProtocolError("HTTP answer: 101 Switching Protocols to a plain GET");
    }
    // Interim answers (100 Continue and the like) come before the real one.
    if (head.status >= 100 && head.status < 200) {
      start = head.end;
      continue;
    }
    buffer.onProgress = onProgress;
    buffer.onProgress?.();
    return head;
  }
}

interface Head {
  readonly status: number;
  readonly statusText: string;
  readonly headers: Map<string, string>;
  readonly keepAlive: boolean;
  /** Offset of the first byte after the head. */
  readonly end: number;
}

/** A header name (RFC 9110 token). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const STATUS_LINE = /^HTTP\/1\.([01]) ([1-5]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/;

async function readHead(buffer: ReadBuffer, start: number): Promise<Head> {
  let searched = start;
  for (;;) {
    const bytes = buffer.bytes;
    // Offsets count from the answer's first byte: interim answers use up the same bound.
    const end = Math.min(buffer.length, MAX_HEAD_BYTES);
    for (let i = Math.max(searched, start + 3); i < end; i++) {
      if (bytes[i] === 10 && bytes[i - 1] === 13 && bytes[i - 2] === 10 && bytes[i - 3] === 13) {
        return parseHead(latin1.decode(bytes.subarray(start, i - 3)), i + 1);
      }
    }
    searched = Math.max(start, buffer.length - 3);
    if (buffer.length >= MAX_HEAD_BYTES) {
      throw new Http1ProtocolError(`HTTP answer: headers longer than ${MAX_HEAD_BYTES} bytes`);
    }
    if (!(await buffer.fill())) {
      throw new Http1ProtocolError("HTTP answer: the connection ended within the headers");
    }
  }
}

function parseHead(text: string, end: number): Head {
  const lines = text.split("\r\n");
  const status = STATUS_LINE.exec(lines[0] ?? "");
  if (status === null) {
    throw new Http1ProtocolError(
      `HTTP answer: not an HTTP/1.x status line: ${quote(lines[0] ?? "")}`,
    );
  }
  // A Map, not a Headers: its WebIDL checks per header were a visible part of a small read.
  const headers = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).toLowerCase();
    if (colon <= 0 || !TOKEN.test(name)) {
      throw new Http1ProtocolError("HTTP answer: an invalid header line");
    }
    const value = line.slice(colon + 1).trim();
    const earlier = headers.get(name);
    headers.set(name, earlier === undefined ? value : `${earlier}, ${value}`);
  }
  const connection = (headers.get("connection") ?? "").toLowerCase();
  const keepAlive = status[1] === "1"
    ? !/(^|,)\s*close\s*(,|$)/.test(connection)
    : /(^|,)\s*keep-alive\s*(,|$)/.test(connection);
  return {
    status: Number(status[2]),
    // Printable only: `Response` refuses other reason phrases.
    statusText: (status[3] ?? "").replace(/[^\x20-\x7e]/g, ""),
    headers,
    keepAlive,
    end,
  };
}

/** A Content-Length header's value; repeated ones (joined by ", ") must all say the same. */
function parseLength(lengthHeader: string): number {
  const lengths = new Set(lengthHeader.split(",").map((value) => value.trim()));
  const length = lengths.size === 1 ? Number([...lengths][0]) : Number.NaN;
  if (!/^\d+$/.test([...lengths][0] ?? "") || !Number.isSafeInteger(length)) {
    throw new Http1ProtocolError(`HTTP answer: invalid Content-Length ${quote(lengthHeader)}`);
  }
  return length;
}

/**
 * The body length of an answer framed by `Content-Length` alone, else `undefined` (chunked,
 * or ended by the close); a transfer coding other than `chunked`, or beside a length, is an
 * error as in {@linkcode readBody}.
 */
function framingLength(head: Head): number | undefined {
  const transferEncoding = head.headers.get("transfer-encoding");
  const lengthHeader = head.headers.get("content-length");
  if (transferEncoding !== undefined) {
    if (transferEncoding.trim().toLowerCase() !== "chunked" || lengthHeader !== undefined) {
      throw new Http1ProtocolError(
        `HTTP answer: Transfer-Encoding ${quote(transferEncoding)}${
          lengthHeader === undefined ? "" : " with a Content-Length"
        } is not read`,
      );
    }
    return undefined;
  }
  return lengthHeader === undefined ? undefined : parseLength(lengthHeader);
}

interface Body {
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** Whether the whole body was read (not cut at the limit, not ended by the close). */
  readonly complete: boolean;
  /** Offset after the body in the buffer. */
  readonly end: number;
}

async function readBody(buffer: ReadBuffer, head: Head, limit: number): Promise<Body> {
  const start = head.end;
  if (head.status === 204 || head.status === 304) {
    return { bytes: new Uint8Array(0), complete: true, end: start };
  }
  const transferEncoding = head.headers.get("transfer-encoding");
  const lengthHeader = head.headers.get("content-length");
  if (transferEncoding !== undefined) {
    // No `TE` is sent, so `chunked` alone is the one coding a server may use; a length beside
    // it is how one answer is made to read as two (RFC 9112 6.3: handled as an error).
    if (transferEncoding.trim().toLowerCase() !== "chunked" || lengthHeader !== undefined) {
      throw new Http1ProtocolError(
        `HTTP answer: Transfer-Encoding ${quote(transferEncoding)}${
          lengthHeader === undefined ? "" : " with a Content-Length"
        } is not read`,
      );
    }
    return await readChunked(buffer, start, limit);
  }
  if (lengthHeader === undefined) return await readToEnd(buffer, start, limit);
  const length = parseLength(lengthHeader);
  const wanted = Math.min(length, limit);
  while (buffer.length - start < wanted) {
    if (!(await buffer.fill())) {
      throw new Http1ProtocolError(
        `HTTP answer: the connection ended after ${buffer.length - start} of ${length} body bytes`,
      );
    }
  }
  return {
    // A view, not a copy: the buffer is this answer's alone.
    bytes: buffer.bytes.subarray(start, start + wanted),
    complete: wanted === length,
    end: start + wanted,
  };
}

/** A body that ends with the connection (never reusable). */
async function readToEnd(buffer: ReadBuffer, start: number, limit: number): Promise<Body> {
  while (buffer.length - start < limit && await buffer.fill());
  const end = Math.min(buffer.length, start + limit);
  return { bytes: buffer.bytes.slice(start, end), complete: false, end };
}

/** A chunked body, decoded; parsed again from its start after each read (bodies are small). */
async function readChunked(buffer: ReadBuffer, start: number, limit: number): Promise<Body> {
  for (;;) {
    const parsed = parseChunks(buffer.bytes, start, buffer.length, limit);
    if (parsed !== undefined) return parsed;
    if (!(await buffer.fill())) {
      throw new Http1ProtocolError("HTTP answer: the connection ended within a chunked body");
    }
  }
}

/** The decoded body when the buffer holds all of it (or `limit` bytes of it), else `undefined`. */
function parseChunks(
  bytes: Uint8Array,
  start: number,
  length: number,
  limit: number,
): Body | undefined {
  const parts: Uint8Array[] = [];
  let size = 0;
  let at = start;
  for (;;) {
    const lineEnd = indexOfCrlf(bytes, at, length);
    if ((lineEnd === -1 ? length : lineEnd) - at > MAX_CHUNK_LINE_BYTES) {
      throw new Http1ProtocolError("HTTP answer: a chunk line too long");
    }
    if (lineEnd === -1) return undefined;
    const sizeText = latin1.decode(bytes.subarray(at, lineEnd)).split(";")[0]!.trim();
    if (!/^[0-9a-fA-F]{1,12}$/.test(sizeText)) {
      throw new Http1ProtocolError("HTTP answer: an invalid chunk size");
    }
    const chunkSize = parseInt(sizeText, 16);
    at = lineEnd + 2;
    if (chunkSize === 0) {
      // Trailers, up to an empty line, bounded like a head.
      const trailersStart = at;
      for (;;) {
        const trailerEnd = indexOfCrlf(bytes, at, length);
        if ((trailerEnd === -1 ? length : trailerEnd) - trailersStart > MAX_HEAD_BYTES) {
          throw new Http1ProtocolError(`HTTP answer: trailers longer than ${MAX_HEAD_BYTES} bytes`);
        }
        if (trailerEnd === -1) return undefined;
        const empty = trailerEnd === at;
        at = trailerEnd + 2;
        if (empty) return { bytes: concatBytes(parts, size), complete: true, end: at };
      }
    }
    const available = Math.min(chunkSize, length - at, limit - size);
    if (size + available >= limit) {
      parts.push(bytes.subarray(at, at + available));
      return { bytes: concatBytes(parts, limit), complete: false, end: at + available };
    }
    if (length - at < chunkSize + 2) return undefined;
    if (bytes[at + chunkSize] !== 13 || bytes[at + chunkSize + 1] !== 10) {
      throw new Http1ProtocolError("HTTP answer: a chunk not followed by a line break");
    }
    parts.push(bytes.subarray(at, at + chunkSize));
    size += chunkSize;
    at += chunkSize + 2;
  }
}

/**
 * A server's text as an error quotes it: short, and its control characters escaped, so an
 * answer cannot flood a log or forge lines in it.
 */
function quote(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text);
}

function indexOfCrlf(bytes: Uint8Array, from: number, length: number): number {
  for (let i = from; i + 1 < length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10) return i;
  }
  return -1;
}
