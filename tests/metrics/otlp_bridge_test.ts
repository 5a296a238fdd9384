import assert from "node:assert/strict";
import { otlpExportMayBeOn } from "../../src/metrics/otlp.ts";

Deno.test("otlpExportMayBeOn: only an unset, empty, false or 0 OTEL_DENO turns the bridge off", () => {
  for (const value of ["true", "TRUE", "1", "yes"]) {
    assert.equal(otlpExportMayBeOn({ OTEL_DENO: value }), true, value);
  }
  for (const value of [undefined, "", " ", "false", "False", "0"]) {
    assert.equal(otlpExportMayBeOn({ OTEL_DENO: value }), false, String(value));
  }
  assert.equal(otlpExportMayBeOn({}), false);
});
