/**
 * The trace of one attempt: a span `perago.attempt` with the task type, the workflow and
 * task ids, the retry count and (at the end) the outcome as attributes, and a child span per
 * phase (`perago.download`, `perago.run`, ...). The attempt runs with its span active, so the
 * lakeFS requests it makes are its children; the Conductor requests the broker makes for it
 * (fence look-ups, the result) join the trace through the `traceparent` the protocol
 * carries. Attributes hold ids and names only, never a URL, a header or a secret.
 *
 * @module
 */
import {
  endSpan,
  type Span,
  spanContextOf,
  startSpan,
  traceparentOf,
  withSpan,
} from "../otel/trace.ts";
import { outcomeLabel } from "./attempt_metrics.ts";

/** The ids a span of an attempt carries. */
export interface AttemptSpanIds {
  taskType: string;
  workflowInstanceId: string;
  taskId: string;
  retryCount: number;
  workerId: string;
}

/**
 * One attempt's spans.
 *
 * @example
 * ```ts ignore
 * // As the executor does (executor.ts): `options` are the attempt's AttemptOptions.
 * const traced = new AttemptTrace(ids);
 * const outcome = await traced.run(() =>
 *   runAttempt({ ...options, onPhase: (p) => traced.phase(p) })
 * );
 * traced.end(outcome);
 * ```
 */
export class AttemptTrace {
  readonly #span: Span;
  /**
   * Whether the span has a valid context (a tracer is registered, or a parent's trace goes
   * on): without one every span of the attempt is a no-op, and making its contexts (per phase,
   * for the traceparent) is skipped.
   */
  readonly #traced: boolean;
  #phase: Span | undefined;

  constructor(ids: AttemptSpanIds) {
    this.#span = startSpan("perago.attempt", {
      "perago.task_type": ids.taskType,
      "perago.worker_id": ids.workerId,
      "conductor.workflow_instance_id": ids.workflowInstanceId,
      "conductor.task_id": ids.taskId,
      "conductor.retry_count": ids.retryCount,
    });
    this.#traced = /[1-9a-f]/.test(this.#span.spanContext().traceId);
  }

  /** Trace and span ids for log lines (empty when nothing is traced). */
  get logIds(): { trace_id?: string; span_id?: string } {
    if (!this.#traced) return {};
    const { traceId, spanId } = this.#span.spanContext();
    return { trace_id: traceId, span_id: spanId };
  }

  /** The attempt span's `traceparent`, for requests other processes make for it. */
  get traceparent(): string | undefined {
    return this.#traced ? traceparentOf(this.#span) : undefined;
  }

  /** Runs `fn` with the attempt's span active. */
  run<T>(fn: () => T): T {
    return this.#traced ? withSpan(this.#span, fn) : fn();
  }

  /** A phase began: the previous phase span ends, a new child starts. */
  phase(name: string): void {
    if (!this.#traced) return;
    this.#phase?.end();
    this.#phase = startSpan(`perago.${name}`, { "perago.phase": name }, spanContextOf(this.#span));
  }

  /** Ends the phase and attempt spans with the outcome. */
  end(outcome: { status: string; stale: boolean; reasonForIncompletion?: string | undefined }) {
    this.#phase?.end();
    this.#phase = undefined;
    const label = outcomeLabel(outcome);
    this.#span.setAttribute("perago.outcome", label);
    // The reason is the task's own error text: its class name is enough for a trace.
    const reasonClass = outcome.reasonForIncompletion?.match(/^[A-Za-z_$][\w$]*/)?.[0];
    endSpan(this.#span, label === "COMPLETED" ? undefined : `${label} (${reasonClass ?? "error"})`);
  }
}
