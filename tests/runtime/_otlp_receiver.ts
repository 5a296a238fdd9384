/**
 * A tiny OTLP/HTTP receiver for the tests (JSON encoding: `OTEL_EXPORTER_OTLP_PROTOCOL=
 * http/json`): keeps every export request of `/v1/metrics` and `/v1/traces` and answers 200.
 */

/** An OTLP attribute as JSON. */
export interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: string; doubleValue?: number; boolValue?: boolean };
}

/** One span of an export. */
export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: OtlpAttribute[];
  status?: { code?: number; message?: string };
}

/** One data point of a metric. */
export interface OtlpPoint {
  attributes: OtlpAttribute[];
  asDouble?: number;
  asInt?: string;
  count?: string;
  sum?: number;
}

/** One metric of an export. */
export interface OtlpMetric {
  name: string;
  unit?: string;
  sum?: { dataPoints: OtlpPoint[]; isMonotonic?: boolean };
  gauge?: { dataPoints: OtlpPoint[] };
  histogram?: { dataPoints: OtlpPoint[] };
}

/** A running receiver. */
export interface OtlpReceiver extends AsyncDisposable {
  url: string;
  /** Every metric of every export so far, in arrival order. */
  metrics(): OtlpMetric[];
  /** Every span of every export so far, with its scope name. */
  spans(): (OtlpSpan & { scope: string; service: string })[];
  close(): Promise<void>;
}

/** Attributes as a plain object of strings. */
export function attrs(list: readonly OtlpAttribute[]): Record<string, string> {
  return Object.fromEntries(
    list.map((a) => [
      a.key,
      String(a.value.stringValue ?? a.value.intValue ?? a.value.doubleValue ?? a.value.boolValue),
    ]),
  );
}

/** Starts the receiver on a free loopback port. */
export function startOtlpReceiver(): OtlpReceiver {
  const metrics: OtlpMetric[] = [];
  const spans: (OtlpSpan & { scope: string; service: string })[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    const body = await req.json().catch(() => ({}));
    if (path === "/v1/metrics") {
      for (const rm of body.resourceMetrics ?? []) {
        for (const sm of rm.scopeMetrics ?? []) metrics.push(...(sm.metrics ?? []));
      }
    } else if (path === "/v1/traces") {
      for (const rs of body.resourceSpans ?? []) {
        const service = attrs(rs.resource?.attributes ?? [])["service.name"] ?? "";
        for (const ss of rs.scopeSpans ?? []) {
          for (const span of ss.spans ?? []) {
            spans.push({ ...span, scope: ss.scope?.name, service });
          }
        }
      }
    }
    return Response.json({});
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    metrics: () => [...metrics],
    spans: () => [...spans],
    close: () => server.shutdown(),
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}
