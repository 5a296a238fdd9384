/**
 * util/http1.ts against servers that lie, stall or try to desynchronise a kept-alive
 * connection: each test shows one attack failing on a real loopback socket.
 */
import assert from "node:assert/strict";
import { Http1Connections, Http1ProtocolError } from "../../src/util/http1.ts";
import { LakeFsClient } from "../../src/lakefs/client.ts";
import { LakeFsError } from "../../src/lakefs/errors.ts";
import { RequestTimer } from "../../src/util/http.ts";

const encoder = new TextEncoder();

/** A server connection as the test sees it: what it received, and when it ended. */
interface Peer {
  readonly conn: Deno.Conn;
  /** Resolves with each request head (up to its blank line), in order. */
  nextRequest(): Promise<string>;
  write(data: string | Uint8Array): Promise<void>;
  /** Resolves when the client closed its side (a read gave the end of the stream). */
  readonly ended: Promise<void>;
  isEnded(): boolean;
}

/**
 * A loopback server handing each accepted connection to `serve` (the test writes the answers
 * itself, in as many pieces and with as many pauses as it likes).
 */
async function withServer(
  serve: (peer: Peer, nth: number) => Promise<void>,
  fn: (url: URL, stats: { accepted: number; open: () => number }) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peers = new Set<Peer>();
  const served: Promise<void>[] = [];
  const stats = { accepted: 0, open: () => [...peers].filter((p) => !p.isEnded()).length };
  const peerOf = (conn: Deno.Conn): Peer => {
    let text = "";
    const waiting: ((request: string) => void)[] = [];
    const heads: string[] = [];
    let ended = false;
    let markEnded!: () => void;
    const endedPromise = new Promise<void>((resolve) => markEnded = resolve);
    (async () => {
      const buffer = new Uint8Array(16 * 1024);
      try {
        for (;;) {
          const n = await conn.read(buffer);
          if (n === null) break;
          text += new TextDecoder().decode(buffer.subarray(0, n));
          let end;
          while ((end = text.indexOf("\r\n\r\n")) !== -1) {
            const head = text.slice(0, end);
            text = text.slice(end + 4);
            const waiter = waiting.shift();
            if (waiter) waiter(head);
            else heads.push(head);
          }
        }
      } catch {
        // reset by the client
      }
      ended = true;
      markEnded();
    })();
    return {
      conn,
      nextRequest: () => {
        const head = heads.shift();
        if (head !== undefined) return Promise.resolve(head);
        return new Promise((resolve) => waiting.push(resolve));
      },
      write: async (data) => {
        const bytes = typeof data === "string" ? encoder.encode(data) : data;
        let written = 0;
        while (written < bytes.length) written += await conn.write(bytes.subarray(written));
      },
      ended: endedPromise,
      isEnded: () => ended,
    };
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      const peer = peerOf(conn);
      peers.add(peer);
      const nth = ++stats.accepted;
      served.push(serve(peer, nth).catch(() => {}));
    }
  })();
  try {
    const { port } = listener.addr as Deno.NetAddr;
    await fn(new URL(`http://127.0.0.1:${port}`), stats);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const peer of peers) {
      try {
        peer.conn.close();
      } catch {
        // closed already
      }
    }
    await Promise.allSettled(served);
  }
}

/** Serves every request of every connection with `answer(request)`. */
function everyRequest(answer: (request: string) => string | Uint8Array) {
  return async (peer: Peer) => {
    for (;;) {
      const request = await Promise.race([peer.nextRequest(), peer.ended.then(() => null)]);
      if (request === null) return;
      await peer.write(answer(request));
    }
  };
}

const options = (maxBodyBytes = 1024, signal = new AbortController().signal) => ({
  signal,
  maxBodyBytes,
});

async function until(condition: () => boolean, what: string, deadlineMs = 3_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Rejects after `ms` (the test's own deadline, so a missing defence fails instead of hanging). */
function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: still running after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

Deno.test("http1 hostile: CR, LF or NUL in the target or a header value is refused before anything is sent", async () => {
  await withServer(
    everyRequest(() => "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
    async (url, stats) => {
      const connections = Http1Connections.for(url, { noProxy: true })!;
      try {
        const bad: [string, Record<string, string>][] = [
          ["/a\r\nx-injected: 1", {}],
          ["/a\nGET /b HTTP/1.1", {}],
          ["/a\0b", {}],
          ["/a b", {}],
          ["/a\tb", {}],
          ["a", {}],
          ["/a", { "x-h": "v\r\nx-injected: 1" }],
          ["/a", { "x-h": "v\nx" }],
          ["/a", { "x-h": "v\rx" }],
          ["/a", { "x-h": "v\0x" }],
          ["/a", { "x h": "v" }],
          ["/a", { "x-h:": "v" }],
        ];
        for (const [target, headers] of bad) {
          await assert.rejects(connections.get(target, headers, options()), TypeError, target);
        }
        // A refused value is not quoted: it may be a credential.
        await assert.rejects(
          connections.get("/a", { authorization: "Basic c2VjcmV0\r\nx: y" }, options()),
          (error: unknown) =>
            error instanceof TypeError && /authorization/.test(error.message) &&
            !error.message.includes("c2VjcmV0"),
        );
        assert.equal(stats.accepted, 0, "nothing reached the server");
        // The host comes from a URL, which drops tabs and line breaks: none reaches the head.
        const parsed = new URL(`${url.origin}\r\n/`);
        assert.equal(parsed.host, url.host);
      } finally {
        connections.close();
      }
    },
  );
});

Deno.test("http1 hostile: endless interim (1xx) answers are bounded like one head; 101 is refused", async () => {
  const interim = "HTTP/1.1 100 Continue\r\n\r\n".repeat(8_000); // 200 KB of heads
  await withServer(
    everyRequest((request) =>
      request.startsWith("GET /101")
        ? "HTTP/1.1 101 Switching Protocols\r\nupgrade: evil\r\nconnection: upgrade\r\n\r\n"
        : `${interim}HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok`
    ),
    async (url) => {
      const connections = Http1Connections.for(url, { noProxy: true })!;
      try {
        await assert.rejects(
          deadline(connections.get("/", {}, options()), 3_000, "/"),
          Http1ProtocolError,
        );
        await assert.rejects(
          deadline(connections.get("/101", {}, options()), 3_000, "/101"),
          Http1ProtocolError,
        );
      } finally {
        connections.close();
      }
    },
  );
});

Deno.test("http1 hostile: oversized status line, headers and trailers are refused", async () => {
  const longLine = "x".repeat(70 * 1024);
  await withServer(
    everyRequest((request) => {
      if (request.startsWith("GET /status")) return `HTTP/1.1 200 ${longLine}\r\n\r\n`;
      if (request.startsWith("GET /header")) {
        return `HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-big: ${longLine}\r\n\r\n`;
      }
      if (request.startsWith("GET /many")) {
        return `HTTP/1.1 200 OK\r\ncontent-length: 0\r\n${"x-a: b\r\n".repeat(10_000)}\r\n`;
      }
      if (request.startsWith("GET /chunkline")) {
        return `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2;${longLine}\r\nok\r\n0\r\n\r\n`;
      }
      // Trailers line by line, each short, 200 KB in all.
      return `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n${
        "x-t: 1\r\n".repeat(25_000)
      }\r\n`;
    }),
    async (url) => {
      const connections = Http1Connections.for(url, { noProxy: true })!;
      try {
        for (const target of ["/status", "/header", "/many", "/chunkline", "/trailers"]) {
          await assert.rejects(
            deadline(connections.get(target, {}, options()), 3_000, target),
            Http1ProtocolError,
            target,
          );
        }
      } finally {
        connections.close();
      }
    },
  );
});

Deno.test("http1 hostile: invalid, negative, duplicated or conflicting Content-Length is refused", async () => {
  const lengths: Record<string, string> = {
    negative: "content-length: -1",
    plus: "content-length: +2",
    hex: "content-length: 0x2",
    exponent: "content-length: 2e0",
    empty: "content-length: ",
    text: "content-length: two",
    huge: "content-length: 99999999999999999999999",
    // A bare line feed and escapes in a value, long: an error quoting it would forge log lines.
    forged: `content-length: 2\n[ERROR] forged line \x1b[31m${"x".repeat(5_000)}`,
    conflicting: "content-length: 2\r\ncontent-length: 3",
    list: "content-length: 2, 3",
    withChunked: "content-length: 2\r\ntransfer-encoding: chunked",
    chunkedFirst: "transfer-encoding: chunked\r\ncontent-length: 8",
    gzipChunked: "transfer-encoding: gzip, chunked",
    chunkedTwice: "transfer-encoding: chunked, chunked",
  };
  await withServer(
    everyRequest((request) => {
      const name = request.slice(5, request.indexOf(" ", 5));
      if (name === "same") {
        return "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\nok";
      }
      const chunked = /chunked/.test(lengths[name]!);
      return `HTTP/1.1 200 OK\r\n${lengths[name]}\r\n\r\n${
        chunked ? "2\r\nok\r\n0\r\n\r\n" : "ok"
      }`;
    }),
    async (url) => {
      const connections = Http1Connections.for(url, { noProxy: true })!;
      try {
        for (const name of Object.keys(lengths)) {
          await assert.rejects(
            deadline(connections.get(`/${name}`, {}, options()), 3_000, name),
            (error: unknown) =>
              error instanceof Http1ProtocolError && error.message.length < 200 &&
              ![...error.message].some((c) => c.charCodeAt(0) < 0x20),
            name,
          );
        }
        // The same length twice is one length (RFC 9112 allows a recipient to take it).
        assert.equal(text((await connections.get("/same", {}, options())).body), "ok");
      } finally {
        connections.close();
      }
    },
  );
});

Deno.test("http1 hostile: chunk sizes with signs, prefixes, too many digits or no digits are refused; extensions are skipped", async () => {
  const sizes: Record<string, string> = {
    plus: "+2",
    minus: "-2",
    prefix: "0x2",
    overflow: "1" + "0".repeat(16),
    empty: "",
    space: "2 2",
  };
  await withServer(
    everyRequest((request) => {
      const name = request.slice(5, request.indexOf(" ", 5));
      const size = name === "ext" ? '2;name="v";x' : sizes[name];
      return `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${size}\r\nok\r\n0\r\n\r\n`;
    }),
    async (url) => {
      const connections = Http1Connections.for(url, { noProxy: true })!;
      try {
        for (const name of Object.keys(sizes)) {
          await assert.rejects(
            deadline(connections.get(`/${name}`, {}, options()), 3_000, name),
            Http1ProtocolError,
            name,
          );
        }
        assert.equal(text((await connections.get("/ext", {}, options())).body), "ok");
      } finally {
        connections.close();
      }
    },
  );
});

Deno.test("http1 hostile: a huge announced chunk or length is cut at the limit and its connection closed", async () => {
  await withServer(
    async (peer) => {
      const request = await peer.nextRequest();
      const body = "a".repeat(2048);
      await peer.write(
        request.startsWith("GET /chunk")
          ? `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffff\r\n${body}`
          : `HTTP/1.1 200 OK\r\ncontent-length: 9007199254740991\r\n\r\n${body}`,
      );
      await peer.ended;
    },
    async (url, stats) => {
      const connections = Http1Connections.for(url, { noProxy: true })!;
      try {
        for (const target of ["/chunk", "/length"]) {
          const answer = await connections.get(target, {}, options(101));
          assert.equal(answer.body.length, 101);
        }
        // Both connections were closed by the client, not kept.
        await until(() => stats.open() === 0, "the client to close both connections");
        assert.equal(stats.accepted, 2);
      } finally {
        connections.close();
      }
    },
  );
});

Deno.test("http1 hostile: bytes after an answer's end (sent later) are never read as the next answer", async () => {
  let sendSurplus!: () => void;
  const surplusWanted = new Promise<void>((resolve) => sendSurplus = resolve);
  await withServer(
    async (peer, nth) => {
      if (nth === 1) {
        await peer.nextRequest();
        await peer.write("HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ngood");
        await surplusWanted;
        // A second answer nobody asked for: on a reused connection it would answer the next
        // request (for another object).
        await peer.write("HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nevil");
        await peer.ended;
        return;
      }
      await everyRequest(() => "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nright")(peer);
    },
    async (url, stats) => {
      const connections = Http1Connections.for(url, { noProxy: true })!;
      try {
        assert.equal(text((await connections.get("/a", {}, options())).body), "good");
        sendSurplus();
        // The idle connection that received bytes nobody asked for is closed...
        await until(() => stats.open() === 0, "the client to close the desynchronised connection");
        // ...and the next request goes on a new one.
        assert.equal(text((await connections.get("/b", {}, options())).body), "right");
        assert.equal(stats.accepted, 2);
      } finally {
        connections.close();
      }
    },
  );
});

Deno.test("http1 hostile: surplus in the same read, HTTP/1.0 and Connection: close are never reused", async () => {
  await withServer(
    everyRequest((request) => {
      if (request.startsWith("GET /surplus")) {
        return "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nevil";
      }
      if (request.startsWith("GET /http10")) {
        return "HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok";
      }
      if (request.startsWith("GET /close")) {
        return "HTTP/1.1 200 OK\r\nconnection: Close\r\ncontent-length: 2\r\n\r\nok";
      }
      return "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nright";
    }),
    async (url, stats) => {
      const connections = Http1Connections.for(url, { noProxy: true })!;
      try {
        for (const target of ["/surplus", "/http10", "/close"]) {
          assert.equal(text((await connections.get(target, {}, options())).body), "ok");
          assert.equal(text((await connections.get("/next", {}, options())).body), "right");
        }
        // Each of the three answers cost its connection; the last "/next" kept its own.
        assert.equal(stats.accepted, 4);
      } finally {
        connections.close();
      }
    },
  );
});

Deno.test("http1 hostile: a server closing mid-body fails the read (Content-Length, chunked); the client retries, never returns it cut", async () => {
  let tries = 0;
  await withServer(
    async (peer) => {
      const request = await peer.nextRequest();
      tries++;
      await peer.write(
        request.startsWith("GET /chunked")
          ? "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nhalf"
          : "HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nhalf",
      );
      peer.conn.close();
    },
    async (url) => {
      const connections = Http1Connections.for(url, { noProxy: true })!;
      try {
        await assert.rejects(connections.get("/length", {}, options()), Http1ProtocolError);
        await assert.rejects(connections.get("/chunked", {}, options()), Http1ProtocolError);
      } finally {
        connections.close();
      }
      const client = new LakeFsClient({
        endpointUrl: url.origin,
        accessKeyId: "AKIAHOSTILEKEY",
        secretAccessKey: "hostile/secret",
        noProxy: true,
        retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 },
      });
      const lakefsConnections = client.openConnections();
      try {
        tries = 0;
        await assert.rejects(
          client.getObjectBytes("r", "main", "k", {
            maxBytes: 100,
            connections: lakefsConnections,
          }),
          (error: unknown) => error instanceof LakeFsError && error.transient,
        );
        assert.equal(tries, 3, "each try failed and was retried");
      } finally {
        lakefsConnections?.close();
      }
    },
  );
});

Deno.test("http1 hostile: a trickled head or body cannot keep a small read alive past the request timeout, on either path", async () => {
  const timeoutMs = 300;
  const stops: (() => void)[] = [];
  await withServer(
    async (peer) => {
      for (;;) {
        const request = await Promise.race([peer.nextRequest(), peer.ended.then(() => null)]);
        if (request === null) return;
        let stopped = false;
        stops.push(() => stopped = true);
        if (request.includes("path=pieces")) {
          // Three pieces well within the timeout: a read that must succeed.
          await peer.write("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n");
          for (const piece of "abc") {
            await new Promise((resolve) => setTimeout(resolve, 20));
            await peer.write(piece);
          }
          continue;
        }
        const trickleHead = request.includes("path=head");
        const chunked = request.includes("path=chunked");
        await peer.write(
          trickleHead
            ? "HTTP/1.1 200 OK\r\n"
            : `HTTP/1.1 200 OK\r\n${
              chunked ? "transfer-encoding: chunked" : "content-length: 100"
            }\r\n\r\n`,
        );
        // A byte every third of the timeout, without end: a header line or the body.
        while (!stopped && !peer.isEnded()) {
          await new Promise((resolve) => setTimeout(resolve, timeoutMs / 3));
          await peer.write(trickleHead ? "x" : chunked ? "1\r\nb\r\n" : "b");
        }
        return;
      }
    },
    async (url) => {
      const client = (noProxy: boolean) =>
        new LakeFsClient({
          endpointUrl: url.origin,
          accessKeyId: "AKIAHOSTILEKEY",
          secretAccessKey: "hostile/secret",
          noProxy,
          requestTimeoutMs: timeoutMs,
          retry: { attempts: 1 },
        });
      try {
        for (const noProxy of [true, false]) {
          const lakefs = client(noProxy);
          const connections = lakefs.openConnections();
          assert.equal(connections !== undefined, noProxy);
          try {
            assert.equal(
              text(
                await lakefs.getObjectBytes("r", "main", "pieces", { maxBytes: 100, connections }),
              ),
              "abc",
            );
            for (const key of ["head", "body", "chunked"]) {
              const started = performance.now();
              await assert.rejects(
                deadline(
                  lakefs.getObjectBytes("r", "main", key, { maxBytes: 100, connections }),
                  timeoutMs * 8,
                  `a trickled ${key}`,
                ),
                new RegExp(`timed out after ${timeoutMs} ms`),
                `${key}, ${noProxy ? "kept-alive connections" : "fetch"}`,
              );
              assert.ok(performance.now() - started < timeoutMs * 4);
            }
          } finally {
            connections?.close();
          }
        }
      } finally {
        for (const stop of stops) stop();
      }
    },
  );
});

Deno.test("http1 hostile: bytes of a head do not count as progress (a trickled head cannot restart an idle timer)", async () => {
  await withServer(
    async (peer) => {
      await peer.nextRequest();
      await peer.write("HTTP/1.1 200 OK\r\n");
      while (!peer.isEnded()) {
        await new Promise((resolve) => setTimeout(resolve, 30));
        await peer.write("x");
      }
    },
    async (url) => {
      const connections = Http1Connections.for(url, { noProxy: true })!;
      // An idle timer of 100 ms that progress restarts, as a caller would give it.
      const timer = new RequestTimer(100, undefined, "test");
      try {
        await assert.rejects(
          deadline(
            connections.get("/", {}, {
              signal: timer.signal,
              maxBodyBytes: 100,
              onProgress: () => timer.restart(),
            }),
            2_000,
            "a trickled head",
          ),
          (error: unknown) => error instanceof DOMException && error.name === "TimeoutError",
        );
      } finally {
        timer.done();
        connections.close();
      }
    },
  );
});

Deno.test("http1 hostile: an abort mid-body closes the connection and never gives it back to the pool", async () => {
  await withServer(
    async (peer) => {
      for (;;) {
        const request = await Promise.race([peer.nextRequest(), peer.ended.then(() => null)]);
        if (request === null) return;
        if (request.startsWith("GET /stall")) {
          await peer.write("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf");
        } else {
          await peer.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        }
      }
    },
    async (url, stats) => {
      const connections = Http1Connections.for(url, { noProxy: true })!;
      try {
        assert.equal(text((await connections.get("/a", {}, options())).body), "ok");
        const controller = new AbortController();
        const stalled = connections.get("/stall", {}, options(1024, controller.signal));
        const reason = new Error("caller gave up");
        // Abort once the server has seen the request (its answer is half written).
        await until(() => stats.accepted === 1, "the request");
        setTimeout(() => controller.abort(reason), 50);
        await assert.rejects(
          deadline(stalled, 3_000, "the aborted read"),
          (error) => error === reason,
        );
        await until(() => stats.open() === 0, "the aborted connection to be closed");
        assert.equal(text((await connections.get("/b", {}, options())).body), "ok");
        assert.equal(stats.accepted, 2, "the aborted connection was not reused");
      } finally {
        connections.close();
      }
    },
  );
});

Deno.test("http1 hostile: at most 64 connections stay idle; the rest are closed", async () => {
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  await withServer(
    async (peer) => {
      await peer.nextRequest();
      await released;
      await peer.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
      await peer.ended;
    },
    async (url, stats) => {
      const connections = Http1Connections.for(url, { noProxy: true })!;
      try {
        const reads = Array.from({ length: 70 }, (_, i) => connections.get(`/${i}`, {}, options()));
        await until(() => stats.accepted === 70, "70 connections");
        release();
        await Promise.all(reads);
        await until(() => stats.open() === 64, "the 6 past the idle bound to be closed");
      } finally {
        connections.close();
      }
      await until(() => stats.open() === 0, "close() to close the idle connections");
    },
  );
});

Deno.test("http1 hostile: no error of a kept-alive read names the secret or the authorization header", async () => {
  const accessKeyId = "AKIASECRETTESTKEY1";
  const secret = "Sup3r/Secret+Value=";
  const authorization = `Basic ${btoa(`${accessKeyId}:${secret}`)}`;
  // Each answer echoes the request's head where the error might quote it.
  await withServer(
    everyRequest((request) => {
      const echo = request.replace(/\r\n/g, " ");
      if (request.includes("kstatus")) return `HTTP/1.1 200 ${echo}\r\n${"x".repeat(70_000)}`;
      if (request.includes("kline")) return `HTTP/9 ${echo}\r\n\r\n`;
      if (request.includes("k404")) {
        const body = JSON.stringify({ message: "no such object" });
        return `HTTP/1.1 404 Not Found\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
      }
      if (request.includes("kte")) return `HTTP/1.1 200 OK\r\ntransfer-encoding: x\r\n\r\n`;
      return `HTTP/1.1 200 OK\r\ncontent-length: 4000\r\n\r\nshort`;
    }),
    async (url) => {
      const lakefs = new LakeFsClient({
        endpointUrl: url.origin,
        accessKeyId,
        secretAccessKey: secret,
        noProxy: true,
        requestTimeoutMs: 2_000,
        retry: { attempts: 1 },
      });
      const connections = lakefs.openConnections();
      try {
        for (const key of ["kstatus", "kline", "k404", "kte", "kshort"]) {
          const error = await lakefs.getObjectBytes("r", "main", key, {
            maxBytes: 10_000,
            connections,
          })
            .then(() => assert.fail(`${key} succeeded`), (error: unknown) => error);
          const seen: string[] = [];
          for (let e: unknown = error; e instanceof Error; e = e.cause) {
            seen.push(e.message, String(e), e.stack ?? "");
          }
          const all = seen.join("\n");
          assert.ok(all.length > 0, key);
          for (const leak of [secret, authorization, btoa(`${accessKeyId}:${secret}`)]) {
            assert.ok(!all.includes(leak), `${key}: an error names ${leak}: ${all}`);
          }
        }
      } finally {
        connections?.close();
      }
    },
  );
});

Deno.test("http1 hostile: a body with a content coding is left to fetch, which decodes it: both paths give the same bytes", async () => {
  const plain = encoder.encode("decoded content ".repeat(20));
  const gzipped = new Uint8Array(
    await new Response(
      new Blob([plain]).stream().pipeThrough(new CompressionStream("gzip")),
    ).arrayBuffer(),
  );
  let served = 0;
  await withServer(
    everyRequest(() => {
      served++;
      const head = encoder.encode(
        `HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: ${gzipped.length}\r\n\r\n`,
      );
      const out = new Uint8Array(head.length + gzipped.length);
      out.set(head);
      out.set(gzipped, head.length);
      return out;
    }),
    async (url) => {
      for (const noProxy of [true, false]) {
        const lakefs = new LakeFsClient({
          endpointUrl: url.origin,
          accessKeyId: "AKIAHOSTILEKEY",
          secretAccessKey: "hostile/secret",
          noProxy,
          retry: { attempts: 1 },
        });
        const connections = lakefs.openConnections();
        try {
          const body = await lakefs.getObjectBytes("r", "main", "coded", {
            maxBytes: 1000,
            connections,
          });
          assert.equal(text(body), text(plain), noProxy ? "kept-alive connections" : "fetch");
        } finally {
          connections?.close();
        }
      }
      assert.equal(served, 3, "the kept-alive try was answered, then fetch's; then fetch's");
    },
  );
});
