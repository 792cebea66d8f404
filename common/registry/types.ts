/**
 * The model registry contract shared by the retrainer (register a challenger,
 * promote or reject it), the edge worker (load and follow the champion) and the
 * registry CLI (list, history, rollback).
 *
 * Two implementations: {@link DirectoryRegistry} (`common/registry/directory.ts`,
 * the embedded default) and `MlflowRegistry` (`common/registry/mlflow.ts`);
 * `createRegistry` (`common/registry/factory.ts`) picks one from the environment.
 *
 * Version numbers: the registry assigns them ("1", "2", … — the string of an
 * integer) and they are authoritative. The artifact's own `metadata.json`
 * `version` field keeps whatever the trainer wrote (`bootstrap`, `candidate`)
 * and is never rewritten, because `metadata.json` is covered by the version's
 * checksum. The edge learns the number from {@link ModelVersion.version} (as
 * returned by `getChampion` / `watchChampion`) and reports that, not
 * `metadata.version`.
 */

/** Lifecycle state of a registered version, derived from the alias and the audit trail. */
export type VersionStatus = 'candidate' | 'champion' | 'rejected' | 'retired';

/** The only alias Driftline moves. */
export type RegistryAlias = 'champion';

/** One registered version of a model. */
export interface ModelVersion {
  /** Registered model name, e.g. `driftline-efficiency`. */
  name: string;
  /** Registry-assigned version: the string of a positive integer ("1", "2", …). */
  version: string;
  /** ISO-8601 time of registration. */
  createdAt: string;
  /** sha256 (hex) of the stored `metadata.json`, which itself lists sha256+bytes of the other files. */
  checksum: string;
  /**
   * `champion`: the `champion` alias points here; `rejected`: marked rejected (see
   * `rejectedReason`); `retired`: was champion once, is not now; `candidate`: never promoted.
   */
  status: VersionStatus;
  /** Why it was rejected, when `status` is `rejected`. */
  rejectedReason?: string;
  /** Evaluation metrics recorded at registration (accuracy, macroF1, …). */
  metrics: Record<string, number>;
  /** Free-form tags recorded at registration (plus correlation/request ids). */
  tags: Record<string, string>;
  /** Training run that produced it (MLflow run id, or the retrainer's own id). */
  runId?: string;
  /**
   * The registry-version signature stored with it (JSON text, `common/model/version-signature.ts`), if any:
   * opaque to the registry, verified by the edge against this version's name, number and files.
   */
  versionSignature?: string;
}

/** One move of the `champion` alias, as recorded in the history. */
export interface AliasChange {
  /** ISO-8601 time of the move. */
  at: string;
  /** Registered model name. */
  name: string;
  /** The alias that moved. */
  alias: RegistryAlias;
  /** Version the alias pointed at before, absent for the first promotion. */
  from?: string;
  /** Version the alias points at after the move. */
  to: string;
  /** Who moved it: `retrainer`, `cli:<user>`, … */
  by: string;
  /** Why, in words (the promotion decision, the operator's rollback reason). */
  reason: string;
  /** Correlation id of the flow that moved it (drift event → retrain → promote). */
  correlationId?: string;
  /** `promote` for {@link ModelRegistry.setChampion}, `rollback` for {@link ModelRegistry.rollback}. */
  action: 'promote' | 'rollback';
}

/** What the caller knows about a version it registers. */
export interface RegisterInfo {
  /** Correlation id of the flow (drift event → retrain); stored as tag `driftline.correlation_id`. */
  correlationId: string;
  /** Id of the retrain request that produced it; stored as tag `driftline.request_id`. */
  requestId?: string;
  /** Training run id (for MLflow: the run whose `model/` artifacts hold the files). */
  runId?: string;
  /** Evaluation metrics of the artifact (validation accuracy, macro F1, …). */
  metrics: Record<string, number>;
  /** Extra tags; keys starting with `driftline.` are reserved for the registry. */
  tags?: Record<string, string>;
  /** Where it came from, in words (scenario file, `bootstrap`, `retrainer`); stored as tag `driftline.source`. */
  source?: string;
}

/** Who promotes or rolls back, and why. */
export interface AliasAudit {
  /** Who: `retrainer`, `cli:alice`, … */
  by: string;
  /** Why, in words. */
  reason: string;
  /** Correlation id of the flow, if any. */
  correlationId?: string;
}

/** Options of {@link ModelRegistry.watchChampion}. */
export interface WatchOptions {
  /** Poll interval in ms (directory: default 1000; MLflow: default 5000). */
  intervalMs?: number;
  /** Called when a poll fails (the watcher keeps polling). */
  onError?: (err: unknown) => void;
  /** Fire once at start with the current champion (default false: only changes). */
  emitInitial?: boolean;
}

/** Stops a watcher. */
export type Unwatch = () => void;

/** A versioned store of model artifacts with a `champion` alias and an audit trail. */
export interface ModelRegistry {
  /** For logs and the dashboard: `directory /abs/path` or `mlflow http://host:port`. */
  readonly kind: string;

  /**
   * Copies the artifact directory into the registry (after verifying its
   * checksums), assigns the next version number and records checksums, metrics
   * and tags. The new version is a `candidate`: the alias does not move.
   * Throws `ArtifactError` when the artifact fails its own checksums.
   */
  registerVersion(name: string, artifactDir: string, info: RegisterInfo): Promise<ModelVersion>;

  /** The version the `champion` alias points at, or undefined when none was promoted. */
  getChampion(name: string): Promise<ModelVersion | undefined>;

  /** One version, or undefined when it does not exist. */
  getVersion(name: string, version: string): Promise<ModelVersion | undefined>;

  /** Every version, oldest first (empty when the model does not exist). */
  listVersions(name: string): Promise<ModelVersion[]>;

  /**
   * Points `champion` at `version` atomically (after verifying the stored
   * artifact) and appends a history entry with the previous version. Refuses a
   * rejected or unknown version with `RegistryError`.
   */
  setChampion(name: string, version: string, audit: AliasAudit): Promise<void>;

  /**
   * Stores the registry-version signature of `version` (replacing any), as the signer made it; the registry
   * neither checks nor changes it. Throws `RegistryError` (`REGISTRY_NOT_FOUND`) for an unknown version.
   */
  setVersionSignature(name: string, version: string, signature: string): Promise<void>;

  /** Records that `version` lost its evaluation (kept for audit, never promoted). Refuses the current champion. */
  markRejected(name: string, version: string, reason: string, correlationId?: string): Promise<void>;

  /**
   * Moves `champion` back to the champion before the current one (replaying
   * the history as a stack: promotions push, rollbacks pop; rejected versions
   * are skipped). Throws `RegistryError` (code `REGISTRY_NO_PREVIOUS`) when there is none.
   */
  rollback(name: string, audit: AliasAudit): Promise<ModelVersion>;

  /** Every alias move, oldest first. */
  history(name: string): Promise<AliasChange[]>;

  /**
   * A local directory holding the verified artifact of `version` (directory
   * registry: the stored copy; MLflow: a download cached under
   * `.driftline/cache/mlflow/<name>/<version>`). Throws `ArtifactError` on a
   * checksum mismatch and `RegistryError` when the version does not exist.
   */
  fetchArtifact(name: string, version: string): Promise<string>;

  /**
   * Calls `onChange` whenever the champion changes (including a rollback done
   * from another process). Returns a function that stops watching.
   */
  watchChampion(
    name: string,
    onChange: (champion: ModelVersion | undefined) => void,
    options?: WatchOptions,
  ): Unwatch;

  /** Releases timers and connections. */
  close(): Promise<void>;
}
