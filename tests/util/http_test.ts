import assert from "node:assert/strict";
import {
  MAX_SERVER_MESSAGE_LENGTH,
  RequestTimer,
  requestUrl,
  serverMessageOf,
} from "../../src/util/http.ts";
import { waitFor } from "../../src/util/sleep.ts";

Deno.test("RequestTimer follows the caller's signal: an abort carries the caller's reason", () => {
  const caller = new AbortController();
  const timer = new RequestTimer(60_000, caller.signal, "lakeFS");
  assert.equal(timer.signal.aborted, false);
  const reason = new Error("cancelled by the caller");
  caller.abort(reason);
  assert.equal(timer.signal.aborted, true);
  assert.equal(timer.signal.reason, reason);
  assert.equal(timer.timedOut, false);
  timer.done();
});

Deno.test("RequestTimer: a caller signal aborted already aborts the try at once", () => {
  const caller = new AbortController();
  caller.abort(new Error("gone"));
  const timer = new RequestTimer(60_000, caller.signal, "lakeFS");
  assert.equal(timer.signal.aborted, true);
  assert.equal((timer.signal.reason as Error).message, "gone");
  timer.restart(); // no timer is started on an aborted try
  timer.done();
});

Deno.test("RequestTimer: no progress within the timeout aborts the try with a TimeoutError", async () => {
  const caller = new AbortController();
  const timer = new RequestTimer(20, caller.signal, "Conductor");
  await waitFor(() => timer.signal.aborted, { timeoutMs: 5_000 });
  assert.equal(timer.timedOut, true);
  assert.equal((timer.signal.reason as DOMException).name, "TimeoutError");
  assert.match((timer.signal.reason as DOMException).message, /Conductor request timed out/);
  // The caller aborting afterwards changes nothing.
  caller.abort(new Error("late"));
  assert.equal((timer.signal.reason as DOMException).name, "TimeoutError");
});

Deno.test("RequestTimer: done() stops the timer and the following of the caller's signal", async () => {
  const caller = new AbortController();
  const timer = new RequestTimer(20, caller.signal, "lakeFS");
  timer.done();
  // Past the timeout, and the caller aborting: the finished try's signal is left alone.
  const start = performance.now();
  await waitFor(() => performance.now() - start > 60, { timeoutMs: 5_000 });
  caller.abort(new Error("after the try"));
  assert.equal(timer.signal.aborted, false);
  assert.equal(timer.timedOut, false);
});

Deno.test("RequestTimer: progress keeps the try alive past the timeout; the wait then counts from the last progress", async () => {
  const timer = new RequestTimer(500, undefined, "lakeFS");
  const start = performance.now();
  // Progress every ~10 ms for 700 ms, past the timeout (a tick 500 ms late would be a stall
  // no test host has).
  while (performance.now() - start < 700) {
    timer.restart();
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(timer.signal.aborted, false, `aborted ${performance.now() - start} ms in`);
  }
  const last = performance.now();
  timer.restart();
  await waitFor(() => timer.signal.aborted, { timeoutMs: 5_000 });
  assert.ok(performance.now() - last >= 499, "not before the timeout since the last progress");
  assert.equal(timer.timedOut, true);
});

Deno.test("requestUrl: parameters encoded as URLSearchParams does, undefined and (with omitEmpty) empty ones left out", () => {
  const url = requestUrl("http://h:1/api/v1", "/repositories/r/refs/main/objects", {
    path: "data/a b+c&d=é?.txt",
    amount: 1000,
    after: undefined,
    prefix: "",
  });
  assert.equal(
    url.href,
    "http://h:1/api/v1/repositories/r/refs/main/objects?path=data%2Fa+b%2Bc%26d%3D%C3%A9%3F.txt&amount=1000&prefix=",
  );
  assert.equal(url.searchParams.get("path"), "data/a b+c&d=é?.txt");
  assert.equal(
    requestUrl("http://h:1/api", "/tasks", { count: 2, domain: "" }, { omitEmpty: true }).href,
    "http://h:1/api/tasks?count=2",
  );
  assert.equal(requestUrl("http://h:1/api", "/health").href, "http://h:1/api/health");
});

Deno.test("RequestTimer: a shorter timeout started later still fires first; the longer one keeps waiting", async () => {
  const long = new RequestTimer(60_000, undefined, "lakeFS");
  const short = new RequestTimer(30, undefined, "lakeFS");
  try {
    await waitFor(() => short.signal.aborted, { timeoutMs: 5_000 });
    assert.equal(short.timedOut, true);
    assert.equal(long.signal.aborted, false);
  } finally {
    long.done();
    short.done();
  }
});

Deno.test("serverMessageOf: a hostile JSON message is cut and its control characters neutralised", () => {
  const flood = JSON.stringify({ message: "x".repeat(1_000_000) });
  const cut = serverMessageOf(flood)!;
  assert.equal(cut.length, MAX_SERVER_MESSAGE_LENGTH + 1);
  assert.ok(cut.endsWith("…"));
  const forged = serverMessageOf(
    JSON.stringify({ message: "ok\r\u001b[2K\u009bforged\tline\nnext" }),
  );
  assert.equal(forged, "ok\ufffd\ufffd[2K\ufffdforged\tline\nnext");
  assert.equal(serverMessageOf('{"message":"branch not found"}'), "branch not found");
});
