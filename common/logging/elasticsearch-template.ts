import type { estypes } from '@elastic/elasticsearch';

/**
 * The index template and daily index names of the Elasticsearch log shipper
 * (`elasticsearch-transport.ts`). Kept apart so tests, docs and the Kibana
 * saved objects can refer to the same names.
 */

/** Default index prefix: documents go to `edge-mlops-YYYY.MM.DD`. */
export const DEFAULT_INDEX_PREFIX = 'edge-mlops';

/** Bumped whenever the mappings below change; stored as the template's `version`. */
export const TEMPLATE_VERSION = 1;

/** `edge-mlops-2026.11.25` for an event at any time of 25 November 2026 UTC. */
export function dailyIndexName(prefix: string, time: Date): string {
  const y = time.getUTCFullYear();
  const m = String(time.getUTCMonth() + 1).padStart(2, '0');
  const d = String(time.getUTCDate()).padStart(2, '0');
  return `${prefix}-${y}.${m}.${d}`;
}

/**
 * The daily index of an ECS document: the UTC date of its `@timestamp`, or of
 * `fallback` (now) when the timestamp is missing or unparsable.
 */
export function indexForDocument(
  prefix: string,
  doc: Record<string, unknown>,
  fallback: Date = new Date(),
): string {
  const ts = doc['@timestamp'];
  const parsed = typeof ts === 'string' || typeof ts === 'number' ? new Date(ts) : undefined;
  return dailyIndexName(prefix, parsed !== undefined && !Number.isNaN(parsed.getTime()) ? parsed : fallback);
}

/** Options of {@link indexTemplateBody}. */
export interface TemplateOptions {
  /** Primary shards of each daily index. Default 1 (a day of logs is small). */
  shards?: number;
  /** Replicas; unset keeps the cluster default (1). Use 0 on a single-node cluster. */
  replicas?: number;
}

const keyword: estypes.MappingKeywordProperty = { type: 'keyword', ignore_above: 1024 };

/**
 * The composable index template for `<prefix>-*`, as the body of
 * `PUT _index_template/<prefix>` (`client.indices.putIndexTemplate`). ECS types
 * for the fields the Driftline logger writes:
 *
 * - `@timestamp` date, `log.level` keyword, `message` text, `ecs.version` keyword
 * - `service.name` / `service.version` keyword, `trace.id` keyword (the correlation id)
 * - `event.action` / `event.outcome` / `event.reason` keyword, `event.duration_ms` double
 * - `labels.*` keyword (dynamic template), `error.message` text, `error.type` keyword, `error.stack_trace` text
 * - `driftline.*` (every other field a service logs) as one `flattened` field: any
 *   shape is accepted, so two services logging the same key with different types
 *   can never make documents fail with a mapping conflict, and the index cannot
 *   grow thousands of fields.
 */
export function indexTemplateBody(
  prefix: string,
  options: TemplateOptions = {},
): estypes.IndicesPutIndexTemplateRequest {
  return {
    name: prefix,
    index_patterns: [`${prefix}-*`],
    // Above the built-in templates (logs-*-*, metrics-*-* use 100), so ours wins
    // if a pattern ever overlaps; equal priorities on overlapping patterns are an error.
    priority: 200,
    version: TEMPLATE_VERSION,
    _meta: {
      managed_by: 'driftline',
      description: 'Driftline service logs in ECS (common/logging/elasticsearch-transport.ts)',
    },
    template: {
      settings: {
        number_of_shards: options.shards ?? 1,
        ...(options.replicas !== undefined ? { number_of_replicas: options.replicas } : {}),
      },
      mappings: {
        dynamic_templates: [
          { labels_as_keyword: { path_match: 'labels.*', mapping: keyword } },
          { strings_as_keyword: { match_mapping_type: 'string', mapping: keyword } },
        ],
        properties: {
          '@timestamp': { type: 'date' },
          message: { type: 'text' },
          log: { properties: { level: { type: 'keyword' }, logger: { type: 'keyword' } } },
          ecs: { properties: { version: { type: 'keyword' } } },
          service: { properties: { name: { type: 'keyword' }, version: { type: 'keyword' } } },
          trace: { properties: { id: { type: 'keyword' } } },
          event: {
            properties: {
              action: { type: 'keyword' },
              outcome: { type: 'keyword' },
              reason: keyword,
              duration_ms: { type: 'double' },
            },
          },
          labels: { type: 'object', dynamic: true },
          error: {
            properties: {
              message: { type: 'text' },
              type: { type: 'keyword' },
              code: { type: 'keyword' },
              stack_trace: { type: 'text' },
            },
          },
          driftline: { type: 'flattened', ignore_above: 1024 },
        },
      },
    },
  };
}
