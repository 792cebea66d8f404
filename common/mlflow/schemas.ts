import { z } from 'zod';

/**
 * zod schemas of every MLflow REST answer the client reads (see `types.ts`
 * for the wire types and where they were checked). The client does not trust
 * the server: an answer whose shape does not match is an
 * `MlflowMalformedResponseError`, not an object with undefined fields flowing
 * into the registry. Fields Driftline reads are required with their types;
 * optional ones are checked when present; unknown fields are kept (MLflow adds
 * fields across versions).
 */

const tag = z.looseObject({ key: z.string(), value: z.string() });
const tags = z.array(tag);
/** int64 fields arrive as JSON numbers. */
const int64 = z.number();

export const experimentSchema = z.looseObject({
  experiment_id: z.string().min(1),
  name: z.string(),
  artifact_location: z.string().optional(),
  lifecycle_stage: z.enum(['active', 'deleted']).optional(),
  creation_time: int64.optional(),
  last_update_time: int64.optional(),
  tags: tags.optional(),
});

export const runInfoSchema = z.looseObject({
  run_id: z.string().min(1),
  run_uuid: z.string().optional(),
  run_name: z.string().optional(),
  experiment_id: z.string(),
  user_id: z.string().optional(),
  status: z.enum(['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED']),
  start_time: int64.optional(),
  end_time: int64.optional(),
  artifact_uri: z.string(),
  lifecycle_stage: z.string().optional(),
});

const metric = z.looseObject({
  key: z.string(),
  value: z.number(),
  timestamp: int64,
  step: int64.optional(),
});

export const runSchema = z.looseObject({
  info: runInfoSchema,
  data: z
    .looseObject({
      metrics: z.array(metric).optional(),
      params: z.array(z.looseObject({ key: z.string(), value: z.string() })).optional(),
      tags: tags.optional(),
    })
    .optional(),
});

export const modelVersionSchema = z.looseObject({
  name: z.string(),
  version: z.string().min(1),
  creation_timestamp: int64.optional(),
  last_updated_timestamp: int64.optional(),
  user_id: z.string().optional(),
  current_stage: z.string().optional(),
  description: z.string().optional(),
  source: z.string().optional(),
  run_id: z.string().optional(),
  status: z.enum(['PENDING_REGISTRATION', 'FAILED_REGISTRATION', 'READY']).optional(),
  status_message: z.string().optional(),
  tags: tags.optional(),
  run_link: z.string().optional(),
  aliases: z.array(z.string()).optional(),
});

export const registeredModelSchema = z.looseObject({
  name: z.string(),
  creation_timestamp: int64.optional(),
  last_updated_timestamp: int64.optional(),
  description: z.string().optional(),
  latest_versions: z.array(modelVersionSchema).optional(),
  tags: tags.optional(),
  aliases: z.array(z.looseObject({ alias: z.string(), version: z.string() })).optional(),
});

/** One answer schema per endpoint the client calls. */
export const responses = {
  /** Calls whose answer carries nothing Driftline reads (`{}`): still a JSON object. */
  empty: z.looseObject({}),
  experiment: z.looseObject({ experiment: experimentSchema }),
  experimentId: z.looseObject({ experiment_id: z.string().min(1) }),
  run: z.looseObject({ run: runSchema }),
  runInfo: z.looseObject({ run_info: runInfoSchema }),
  metricHistory: z.looseObject({
    metrics: z.array(metric).optional(),
    next_page_token: z.string().optional(),
  }),
  artifactList: z.looseObject({
    root_uri: z.string().optional(),
    files: z
      .array(z.looseObject({ path: z.string(), is_dir: z.boolean().optional(), file_size: int64.optional() }))
      .optional(),
    next_page_token: z.string().optional(),
  }),
  registeredModel: z.looseObject({ registered_model: registeredModelSchema }),
  modelVersion: z.looseObject({ model_version: modelVersionSchema }),
  modelVersionSearch: z.looseObject({
    model_versions: z.array(modelVersionSchema).optional(),
    next_page_token: z.string().optional(),
  }),
} as const;
