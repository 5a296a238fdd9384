/**
 * zod schemas of the lakeFS answers the client reads (lakeFS OpenAPI `swagger.yml`). Objects
 * are loose: fields a newer server adds are kept, never rejected.
 *
 * @module
 */
import { z } from "zod";

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

/** `ObjectStatsList`. */
export const objectStatsListSchema = z.looseObject({
  pagination: paginationSchema,
  results: z.array(objectStatsSchema),
});

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
