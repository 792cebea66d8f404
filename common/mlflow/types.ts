/**
 * Wire types of the MLflow REST API (2.0), as the server sends and accepts them
 * (snake_case, int64 timestamps in ms as JSON numbers, proto enums as strings).
 * Checked against MLflow 3.17 (`mlflow/protos/service.proto`,
 * `mlflow/protos/model_registry.proto`, `mlflow/server/handlers.py`).
 * Proto3 JSON omits empty fields, hence the many optionals.
 */

/** A key/value tag (experiments, runs, registered models and model versions alike). */
export interface MlflowTag {
  key: string;
  value: string;
}

/** A run parameter (logged once, immutable). */
export interface MlflowParam {
  key: string;
  value: string;
}

/** One metric value; `step` orders per-epoch values. */
export interface MlflowMetric {
  key: string;
  value: number;
  /** Milliseconds since the epoch. */
  timestamp: number;
  /** Epoch / iteration number; default 0. */
  step?: number;
}

export interface MlflowExperiment {
  experiment_id: string;
  name: string;
  /** e.g. `mlflow-artifacts:/1` when the server proxies artifacts. */
  artifact_location?: string;
  lifecycle_stage?: 'active' | 'deleted';
  creation_time?: number;
  last_update_time?: number;
  tags?: MlflowTag[];
}

export type MlflowRunStatus = 'RUNNING' | 'SCHEDULED' | 'FINISHED' | 'FAILED' | 'KILLED';

export interface MlflowRunInfo {
  run_id: string;
  run_uuid?: string;
  run_name?: string;
  experiment_id: string;
  user_id?: string;
  status: MlflowRunStatus;
  start_time?: number;
  end_time?: number;
  /** Root of the run's artifacts, e.g. `mlflow-artifacts:/1/<run_id>/artifacts`. */
  artifact_uri: string;
  lifecycle_stage?: string;
}

export interface MlflowRunData {
  metrics?: MlflowMetric[];
  params?: MlflowParam[];
  tags?: MlflowTag[];
}

export interface MlflowRun {
  info: MlflowRunInfo;
  data?: MlflowRunData;
}

/** An entry of an artifact listing. */
export interface MlflowFileInfo {
  /** Relative path (run listing: from the run's root; proxy listing: the base name). */
  path: string;
  /** Omitted (proto3 JSON default) for files. */
  is_dir?: boolean;
  file_size?: number;
}

export interface MlflowListArtifactsResponse {
  root_uri?: string;
  files?: MlflowFileInfo[];
  next_page_token?: string;
}

export type MlflowModelVersionStatus = 'PENDING_REGISTRATION' | 'FAILED_REGISTRATION' | 'READY';

export interface MlflowModelVersion {
  name: string;
  version: string;
  creation_timestamp?: number;
  last_updated_timestamp?: number;
  user_id?: string;
  /** Deprecated stages; Driftline uses aliases and leaves this at `None`. */
  current_stage?: string;
  description?: string;
  /** Where the files are: `runs:/<run_id>/model` or `mlflow-artifacts:/…`. */
  source?: string;
  run_id?: string;
  status?: MlflowModelVersionStatus;
  status_message?: string;
  tags?: MlflowTag[];
  run_link?: string;
  aliases?: string[];
}

export interface MlflowRegisteredModelAlias {
  alias: string;
  version: string;
}

export interface MlflowRegisteredModel {
  name: string;
  creation_timestamp?: number;
  last_updated_timestamp?: number;
  description?: string;
  latest_versions?: MlflowModelVersion[];
  tags?: MlflowTag[];
  aliases?: MlflowRegisteredModelAlias[];
}

export interface MlflowSearchModelVersionsResponse {
  model_versions?: MlflowModelVersion[];
  next_page_token?: string;
}

/** The error body every MLflow handler sends on failure. */
export interface MlflowErrorBody {
  error_code?: string;
  message?: string;
}
