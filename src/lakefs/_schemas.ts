/**
 * zod schemas of the lakeFS answers the client reads (lakeFS OpenAPI `swagger.yml`). Objects
 * are loose: fields a newer server adds are kept, never rejected.
 *
 * @module
 */
import { z } from "../vendor/zod.ts";

const stringMap = z.record(z.string(), z.string());

/** `Pagination`. */
export const paginationSchema = z.looseObject({
  has_more: z.boolean(),
  next_offset: z.string(),
  results: z.number().int().nonnegative(),
  max_per_page: z.number().int().nonnegative(),
});

/** `Repository`. */
export const repositorySchema = z.looseObject({
  id: z.string(),
  creation_date: z.number(),
  default_branch: z.string(),
  storage_namespace: z.string(),
});

/** `ObjectStats`. */
export const objectStatsSchema = z.looseObject({
  path: z.string(),
  path_type: z.enum(["object", "common_prefix"]),
  physical_address: z.string(),
  checksum: z.string(),
  size_bytes: z.number().int().nonnegative().optional(),
  mtime: z.number(),
  content_type: z.string().optional(),
  metadata: stringMap.optional(),
});

/**
 * `schema`, with `accepts` tried first: a value `accepts` passes is taken as it is; any other
 * is parsed by `schema`, whose issues make the error. `accepts` must pass only what `schema`
 * passes. For the answers read on every attempt's critical path: the first zod parse of a
 * 1,000-object listing took 14-23 ms (V8 runs zod's generic checks cold), the plain check
 * below about 1 ms.
 */
function checkedFirst<S extends z.ZodType>(
  schema: S,
  accepts: (value: unknown) => boolean,
): z.ZodType<z.output<S>> {
  return z.unknown().transform((value, ctx) => {
    if (accepts(value)) return value as z.output<S>;
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data;
    for (const issue of parsed.error.issues) {
      ctx.addIssue({ code: "custom", message: issue.message, path: issue.path, input: value });
    }
    return z.NEVER;
  }) as unknown as z.ZodType<z.output<S>>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): boolean {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** What {@linkcode paginationSchema} passes. */
function isPagination(value: unknown): boolean {
  return isRecord(value) && typeof value.has_more === "boolean" &&
    typeof value.next_offset === "string" && isCount(value.results) &&
    isCount(value.max_per_page);
}

/** What {@linkcode objectStatsSchema} passes. */
function isObjectStats(value: unknown): boolean {
  if (!isRecord(value)) return false;
  const { metadata } = value;
  return typeof value.path === "string" &&
    (value.path_type === "object" || value.path_type === "common_prefix") &&
    typeof value.physical_address === "string" && typeof value.checksum === "string" &&
    (value.size_bytes === undefined || isCount(value.size_bytes)) &&
    typeof value.mtime === "number" && Number.isFinite(value.mtime) &&
    (value.content_type === undefined || typeof value.content_type === "string") &&
    (metadata === undefined ||
      (isRecord(metadata) && Object.values(metadata).every((v) => typeof v === "string")));
}

/** `ObjectStatsList` (a page of a listing; checked plainly first, see `checkedFirst`). */
export const objectStatsListSchema = checkedFirst(
  z.looseObject({ pagination: paginationSchema, results: z.array(objectStatsSchema) }),
  (value) =>
    isRecord(value) && isPagination(value.pagination) && Array.isArray(value.results) &&
    value.results.every(isObjectStats),
);

/** `Ref`. */
export const refSchema = z.looseObject({ id: z.string(), commit_id: z.string() });

/** `RefList`. */
export const refListSchema = z.looseObject({
  pagination: paginationSchema,
  results: z.array(refSchema),
});

/** `Commit`. */
export const commitSchema = z.looseObject({
  id: z.string(),
  parents: z.array(z.string()),
  committer: z.string(),
  message: z.string(),
  creation_date: z.number(),
  meta_range_id: z.string(),
  metadata: stringMap.optional(),
});

/** `CommitList`. */
export const commitListSchema = z.looseObject({
  pagination: paginationSchema,
  results: z.array(commitSchema),
});

/** `Diff`. */
export const diffSchema = z.looseObject({
  type: z.enum(["added", "removed", "changed", "conflict", "prefix_changed"]),
  path: z.string(),
  path_type: z.enum(["object", "common_prefix"]),
  size_bytes: z.number().int().nonnegative().optional(),
});

/** `DiffList`. */
export const diffListSchema = z.looseObject({
  pagination: paginationSchema,
  results: z.array(diffSchema),
});

/** `MergeResult`. */
export const mergeResultSchema = z.looseObject({ reference: z.string() });

/** `ObjectErrorList`. */
export const objectErrorListSchema = z.looseObject({
  errors: z.array(z.looseObject({
    status_code: z.number(),
    message: z.string(),
    path: z.string().optional(),
  })),
});
