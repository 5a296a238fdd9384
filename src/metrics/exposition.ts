/**
 * The Prometheus text exposition format (version 0.0.4) of a registry's families: `# HELP`
 * and `# TYPE` per family, one line per series; histograms as cumulative `_bucket{le=...}`
 * lines ending with `le="+Inf"`, then `_sum` and `_count`.
 *
 * @module
 */
import type { FamilySnapshot, Labels } from "./registry.ts";

/** The `Content-Type` of {@linkcode renderPrometheusText}'s output. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * Renders families as Prometheus text. A family with no series yet is still described
 * (HELP and TYPE), so a scraper sees every metric from the first scrape.
 *
 * @example
 * ```ts
 * import { MetricsRegistry } from "./registry.ts";
 *
 * const registry = new MetricsRegistry();
 * registry.define({ name: "jobs_total", help: "Jobs.", kind: "counter", labelNames: [] });
 * registry.inc("jobs_total");
 * const body = renderPrometheusText(registry.collect()); // "# HELP jobs_total Jobs.\n..."
 * new Response(body, { headers: { "content-type": PROMETHEUS_CONTENT_TYPE } });
 * ```
 */
export function renderPrometheusText(families: readonly FamilySnapshot[]): string {
  const lines: string[] = [];
  for (const { spec, series } of families) {
    lines.push(`# HELP ${spec.name} ${escapeHelp(spec.help)}`);
    lines.push(`# TYPE ${spec.name} ${spec.kind}`);
    for (const one of series) {
      if (spec.kind !== "histogram") {
        lines.push(`${spec.name}${labelText(one.labels)} ${formatNumber(one.value)}`);
        continue;
      }
      let cumulative = 0;
      const bounds = spec.buckets ?? [];
      for (let i = 0; i <= bounds.length; i++) {
        cumulative += one.bucketCounts?.[i] ?? 0;
        const le = i < bounds.length ? formatNumber(bounds[i]!) : "+Inf";
        lines.push(`${spec.name}_bucket${labelText(one.labels, le)} ${cumulative}`);
      }
      lines.push(`${spec.name}_sum${labelText(one.labels)} ${formatNumber(one.value)}`);
      lines.push(`${spec.name}_count${labelText(one.labels)} ${one.count ?? 0}`);
    }
  }
  return lines.join("\n") + "\n";
}

function labelText(labels: Labels, le?: string): string {
  const pairs = Object.entries(labels).map(([name, value]) => `${name}="${escapeLabel(value)}"`);
  if (le !== undefined) pairs.push(`le="${le}"`);
  return pairs.length === 0 ? "" : `{${pairs.join(",")}}`;
}

/** Label values escape backslash, double quote and line feed. */
function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/** HELP text escapes backslash and line feed. */
function escapeHelp(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

/** Go-style float text: integers plainly, `+Inf`, `-Inf`, `NaN`. */
export function formatNumber(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
