import assert from "node:assert/strict";
import { Http1Connections, Http1ProtocolError } from "../../src/util/http1.ts";

const encoder = new TextEncoder();

/**
 * A loopback server answering each request (read up to its blank line) with what `answer`
 * gives for the connection's n-th request; `null` closes the connection instead, and
 * `{ thenClose }` closes it after that answer. Counts the
 * connections accepted.
 */
async function withRawServer(
  answer: (
    request: string,
    nth: number,
    conn: Deno.Conn,
  ) => Uint8Array | string | { thenClose: string } | null,
  fn: (url: URL, connections: () => number, requests: string[]) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const requests: string[] = [];
  let accepted = 0;
  const served: Promise<void>[] = [];
  const open = new Set<Deno.Conn>();
  const serve = async (conn: Deno.Conn) => {
    open.add(conn);
    const buffer = new Uint8Array(64 * 1024);
    let text = "";
    let nth = 0;
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) return;
        text += new TextDecoder().decode(buffer.subarray(0, n));
        let end;
        while ((end = text.indexOf("\r\n\r\n")) !== -1) {
          const request = text.slice(0, end);
          text = text.slice(end + 4);
          requests.push(request);
          const reply = answer(request, ++nth, conn);
          if (reply === null) return;
          const bytes = typeof reply === "string"
            ? encoder.encode(reply)
            : reply instanceof Uint8Array
            ? reply
            : encoder.encode(reply.thenClose);
          let written = 0;
          while (written < bytes.length) written += await conn.write(bytes.subarray(written));
          if (!(typeof reply === "string" || reply instanceof Uint8Array)) return;
        }
      }
    } catch {
      // the client went away
    } finally {
      open.delete(conn);
      try {
        conn.close();
      } catch {
        // closed already
      }
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      accepted++;
      served.push(serve(conn));
    }
  })();
  try {
    const { port } = listener.addr as Deno.NetAddr;
    await fn(new URL(`http://127.0.0.1:${port}`), () => accepted, requests);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const conn of open) {
      try {
        conn.close();
      } catch {
        // closed already
      }
    }
    await Promise.allSettled(served);
  }
}

function ok(body: string, extra = ""): string {
  return `HTTP/1.1 200 OK\r\ncontent-length: ${encoder.encode(body).length}\r\n${extra}\r\n${body}`;
}

const options = (maxBodyBytes = 1024) => ({ signal: new AbortController().signal, maxBodyBytes });

Deno.test("http1: answers framed by Content-Length reuse one connection; headers are sent", async () => {
  await withRawServer(
    (_request, nth) => ok(`answer ${nth}`),
    async (url, connections, requests) => {
      const http = Http1Connections.for(url)!;
      try {
        for (let i = 1; i <= 3; i++) {
          const answer = await http.get(
            "/a?x=1",
            { authorization: "Basic x" },
            options(),
          );
          assert.equal(answer.status, 200);
          assert.equal(new TextDecoder().decode(answer.body), `answer ${i}`);
          assert.equal(answer.headers.get("content-length"), String(`answer ${i}`.length));
        }
        assert.equal(connections(), 1);
        assert.match(requests[0]!, /^GET \/a\?x=1 HTTP\/1\.1\r\nhost: 127\.0\.0\.1:\d+\r\n/);
        assert.match(requests[0]!, /\r\nauthorization: Basic x$/);
      } finally {
        http.close();
      }
    },
  );
});

Deno.test("http1: a chunked body is decoded (trailers skipped); an interim 100 is skipped", async () => {
  const chunked =
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" +
    "5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: 1\r\n\r\n";
  await withRawServer(() => chunked, async (url, connections) => {
    const http = Http1Connections.for(url)!;
    try {
      for (let i = 0; i < 2; i++) {
        const answer = await http.get("/c", {}, options());
        assert.equal(new TextDecoder().decode(answer.body), "hello world");
      }
      assert.equal(connections(), 1);
    } finally {
      http.close();
    }
  });
});

Deno.test("http1: a chunked body from Deno.serve (a stream) arrives whole", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 10; i++) controller.enqueue(new Uint8Array(3000).fill(i));
        controller.close();
      },
    });
    return new Response(body);
  });
  const http = Http1Connections.for(new URL(`http://127.0.0.1:${server.addr.port}`))!;
  try {
    const answer = await http.get("/x", {}, options(100_000));
    assert.equal(answer.body.length, 30_000);
    for (let i = 0; i < 10; i++) assert.equal(answer.body[i * 3000 + 2999], i);
  } finally {
    http.close();
    await server.shutdown();
  }
});

Deno.test("http1: a body past the limit is cut there and its connection not reused", async () => {
  await withRawServer(() => ok("x".repeat(5000)), async (url, connections) => {
    const http = Http1Connections.for(url)!;
    try {
      const first = await http.get("/big", {}, options(101));
      assert.equal(first.body.length, 101);
      const second = await http.get("/big", {}, options(10_000));
      assert.equal(second.body.length, 5000);
      assert.equal(connections(), 2);
    } finally {
      http.close();
    }
  });
});

Deno.test("http1: 'Connection: close' and an idle connection the server closed both get a new connection", async () => {
  // Connection 1 answers once with "connection: close"; connection 2 answers once and then
  // closes without saying so (as an idle timeout does); connection 3 answers the rest.
  let connection = 0;
  await withRawServer((_request, nth) => {
    if (nth === 1) connection++;
    if (connection === 1) return ok("one", "connection: close\r\n");
    if (connection === 2 && nth === 2) return null;
    return ok(`c${connection}`);
  }, async (url, connections) => {
    const http = Http1Connections.for(url)!;
    try {
      assert.equal(new TextDecoder().decode((await http.get("/", {}, options())).body), "one");
      assert.equal(new TextDecoder().decode((await http.get("/", {}, options())).body), "c2");
      // Reuses connection 2, which the server closes unanswered: sent again on connection 3.
      assert.equal(new TextDecoder().decode((await http.get("/", {}, options())).body), "c3");
      assert.equal(connections(), 3);
    } finally {
      http.close();
    }
  });
});

Deno.test("http1: a fresh connection closed unanswered rejects; an abort mid-body rejects with its reason", async () => {
  await withRawServer((request) => {
    if (request.startsWith("GET /close ")) return null;
    // 3 of the 10 bytes announced, then nothing (the connection stays open).
    return "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc";
  }, async (url) => {
    const http = Http1Connections.for(url)!;
    try {
      await assert.rejects(http.get("/close", {}, options()));
      const controller = new AbortController();
      const stalled = http.get("/short", {}, {
        signal: controller.signal,
        maxBodyBytes: 1024,
        onProgress: () => controller.abort(new Error("given up")),
      });
      await assert.rejects(stalled, /given up/);
    } finally {
      http.close();
    }
  });
});

Deno.test("http1: an answer that is not HTTP/1.x is a protocol error", async () => {
  await withRawServer(() => "SMTP ready\r\n\r\n", async (url) => {
    const http = Http1Connections.for(url)!;
    try {
      await assert.rejects(http.get("/", {}, options()), Http1ProtocolError);
    } finally {
      http.close();
    }
  });
});

Deno.test("http1: a line break in a header or the target is refused before anything is sent", async () => {
  await withRawServer(() => ok("no"), async (url, connections) => {
    const http = Http1Connections.for(url)!;
    try {
      await assert.rejects(
        http.get("/", { "x-evil": "a\r\nx-injected: 1" }, options()),
        TypeError,
      );
      await assert.rejects(http.get("/", { "bad name": "a" }, options()), TypeError);
      await assert.rejects(http.get("/a b", {}, options()), TypeError);
      await assert.rejects(http.get("/a\r\nx: 1", {}, options()), TypeError);
      assert.equal(connections(), 0);
    } finally {
      http.close();
    }
  });
});

Deno.test("http1: only plain http without a proxy in the environment", () => {
  assert.equal(Http1Connections.for(new URL("https://example.com")), undefined);
  const saved = Deno.env.get("HTTP_PROXY");
  Deno.env.set("HTTP_PROXY", "http://127.0.0.1:9");
  try {
    assert.equal(Http1Connections.for(new URL("http://127.0.0.1:1")), undefined);
  } finally {
    if (saved === undefined) Deno.env.delete("HTTP_PROXY");
    else Deno.env.set("HTTP_PROXY", saved);
  }
  assert.ok(Http1Connections.for(new URL("http://127.0.0.1:1")) !== undefined);
});

/** A body target collecting what it is given, in views of at most `step` bytes. */
function collector(step: number) {
  const parts: Uint8Array[] = [];
  let view = new Uint8Array(step);
  return {
    target: {
      space: () => view,
      filled: (n: number) => {
        parts.push(view.slice(0, n));
        view = new Uint8Array(step);
      },
    },
    text: () => new TextDecoder().decode(new Uint8Array(parts.flatMap((part) => [...part]))),
    reads: () => parts.length,
  };
}

const streamOptions = (
  target: (length: number) => ReturnType<typeof collector>["target"] | undefined,
) => ({
  signal: new AbortController().signal,
  maxBodyBytes: 1024,
  target,
});

Deno.test("http1 getInto: a body framed by Content-Length goes to the target, exactly, in its views; the connection is reused", async () => {
  await withRawServer(
    (_request, nth) => ok(`streamed answer number ${nth}`),
    async (url, connections) => {
      const http = Http1Connections.for(url)!;
      try {
        for (let i = 1; i <= 3; i++) {
          const sink = collector(5);
          let told = -1;
          const answer = await http.getInto(
            "/s",
            {},
            streamOptions((length) => {
              told = length;
              return sink.target;
            }),
          );
          assert.equal(answer.status, 200);
          assert.equal(answer.streamed, true);
          assert.equal(answer.body.length, 0);
          assert.equal(sink.text(), `streamed answer number ${i}`);
          assert.equal(told, `streamed answer number ${i}`.length);
          // Views of 5 bytes: no read past one.
          assert.ok(sink.reads() >= Math.ceil(told / 5));
        }
        assert.equal(connections(), 1);
      } finally {
        http.close();
      }
    },
  );
});

Deno.test("http1 getInto: other statuses are read whole; a chunked body or one the target refuses is left unread and its connection closed", async () => {
  const chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
  const answers = [
    "HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot found",
    chunked,
    ok("refused"),
    ok("after"),
  ];
  await withRawServer((_request, nth) => answers[nth - 1] ?? null, async (url, connections) => {
    const http = Http1Connections.for(url)!;
    try {
      const sink = collector(64);
      const missing = await http.getInto("/a", {}, streamOptions(() => sink.target));
      assert.equal(missing.status, 404);
      assert.equal(missing.streamed, false);
      assert.equal(new TextDecoder().decode(missing.body), "not found");
      const unframed = await http.getInto("/b", {}, streamOptions(() => sink.target));
      assert.equal(unframed.status, 200);
      assert.equal(unframed.streamed, false);
      assert.equal(sink.reads(), 0);
      assert.equal(connections(), 1);
      // The chunked answer's connection was closed: the next request opens another.
      const refused = await http.getInto("/c", {}, streamOptions(() => undefined));
      assert.equal(refused.streamed, false);
      assert.equal(connections(), 2);
    } finally {
      http.close();
    }
  });
});

Deno.test("http1 getInto: a connection ending short of the length fails the call; the target's error is thrown as is", async () => {
  await withRawServer(
    (request) =>
      request.includes("/short")
        ? { thenClose: "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly some" }
        : ok("body"),
    async (url) => {
      const http = Http1Connections.for(url)!;
      try {
        await assert.rejects(
          http.getInto("/short", {}, streamOptions(() => collector(64).target)),
          (error: unknown) =>
            error instanceof Http1ProtocolError &&
            /ended after 9 of 100 body bytes/.test(error.message),
        );
        const full = new Error("disk full");
        await assert.rejects(
          http.getInto(
            "/t",
            {},
            streamOptions(() => ({
              space: () => new Uint8Array(64),
              filled: () => {
                throw full;
              },
            })),
          ),
          (error: unknown) => error === full,
        );
      } finally {
        http.close();
      }
    },
  );
});
