/**
 * The one module that speaks `@opentelemetry/api` for traces and metrics. Deno's built-in
 * OpenTelemetry (enabled with `OTEL_DENO=true`) registers itself behind that API; without it
 * every call here is a no-op. Deno also makes a child span for each `fetch` made while a span
 * is active, so the lakeFS and Conductor requests of an attempt hang under it.
 *
 * @module
 */
import {
  type Attributes,
  type Context,
  context,
  metrics,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanStatusCode,
  trace,
} from "../vendor/opentelemetry_api.ts";
import { VERSION } from "../version.ts";

export { metrics };
export type { Attributes, Span };

/** perago's tracer. */
function tracer() {
  return trace.getTracer("perago", VERSION);
}

/** Starts a span (a child of the active one, if any). */
export function startSpan(name: string, attributes: Attributes, parent?: Context): Span {
  return tracer().startSpan(name, { attributes }, parent ?? context.active());
}

/** Runs `fn` with `span` active: spans (and `fetch` spans) made inside are its children. */
export function withSpan<T>(span: Span, fn: () => T): T {
  return context.with(trace.setSpan(context.active(), span), fn);
}

/** The context of `span`, for children started outside its `withSpan` call. */
export function spanContextOf(span: Span): Context {
  return trace.setSpan(context.active(), span);
}

/** Ends `span` with an error status when `error` is a message. */
export function endSpan(span: Span, error?: string): void {
  if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
  else span.setStatus({ code: SpanStatusCode.OK });
  span.end();
}

/**
 * The W3C `traceparent` of the active span, to carry a trace across the protocol to another
 * process; `undefined` when nothing is traced.
 */
export function activeTraceparent(): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent;
}

/** The W3C `traceparent` of `span`; `undefined` when nothing is traced. */
export function traceparentOf(span: Span): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(ROOT_CONTEXT, span), carrier);
  return carrier.traceparent;
}

/** Runs `fn` as a child of the remote span `traceparent` (from another process). */
export function withTraceparent<T>(traceparent: string | undefined, fn: () => T): T {
  if (traceparent === undefined) return fn();
  return context.with(propagation.extract(ROOT_CONTEXT, { traceparent }), fn);
}

/** Trace and span ids of the active span, for log lines; `undefined` when none. */
export function activeTraceIds(): { trace_id: string; span_id: string } | undefined {
  const span = trace.getActiveSpan();
  if (span === undefined) return undefined;
  const { traceId, spanId } = span.spanContext();
  if (!/[1-9a-f]/.test(traceId)) return undefined; // the invalid (all-zero) context
  return { trace_id: traceId, span_id: spanId };
}
