import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ArtifactError, TransportError, describeError } from '../errors.ts';
import { silentLogger, type Logger } from '../logging/logger.ts';
import {
  METADATA_FILE,
  parseListedFiles,
  sha256Bytes,
  verifyArtifactFiles,
  type VerifiedArtifact,
} from '../model/artifact-files.ts';
import { MlflowClient, proxyPathFromUri, type MlflowClientOptions } from '../mlflow/client.ts';
import { MlflowAlreadyExistsError, MlflowNotFoundError } from '../mlflow/errors.ts';
import type {
  MlflowMetric,
  MlflowModelVersion,
  MlflowRegisteredModel,
  MlflowRunStatus,
  MlflowTag,
} from '../mlflow/types.ts';
import { sleep } from '../util/sleep.ts';
import { assertModelName, assertVersion, RegistryError } from './errors.ts';
import { compareVersions, deriveStatus, rollbackTarget } from './history.ts';
import { finiteMetrics, registrationTags, RESERVED_PREFIX, TAG } from './tags.ts';
import type {
  AliasAudit,
  AliasChange,
  ModelRegistry,
  ModelVersion,
  RegisterInfo,
  Unwatch,
  WatchOptions,
} from './types.ts';
import { pollChampion, type ChampionSource } from './watch.ts';

/**
 * The model registry on an MLflow tracking server (`MLFLOW_TRACKING_URI`).
 *
 * Mapping:
 * - a registration is a model version of the registered model (default
 *   `driftline-efficiency`) whose `source` is `runs:/<run_id>/model`; the files
 *   live in that run's artifacts (`mlflow-artifacts:/<exp>/<run>/artifacts/model/…`,
 *   uploaded through the artifact proxy). Without a run id, `registerVersion`
 *   creates a run in the `driftline` experiment to hold them;
 * - checksums: model-version tags `driftline.checksum` (sha256 of metadata.json)
 *   and `driftline.files` (the sha256+bytes table), metrics in `driftline.metrics`;
 * - champion: the registered-model alias `champion` (aliases, not the deprecated stages);
 * - rejected: model-version tags `driftline.rejected` (the reason), `driftline.rejected_at`;
 * - registry-version signature: model-version tag `driftline.version_signature` (opaque JSON text);
 * - promotions: model-version tags `driftline.promoted_at/_by/_reason` (so a
 *   version that was champion once reads as `retired`);
 * - history: one registered-model tag per alias move, key
 *   `driftline.history.<ms since epoch, 15 digits>-<random>`, value the JSON
 *   AliasChange (keys sort by time; concurrent writers never overwrite each
 *   other), plus `driftline.previous_champion`. The alias is moved first and the
 *   history tag written after: a crash in between loses one audit entry, never
 *   invents a move, and rollback still finds the previous champion.
 *
 * MLflow has no transactions across calls: two processes promoting at the same
 * instant end with the last writer's alias (each move is itself atomic on the server).
 */

/** Options of {@link MlflowRegistry}. */
export interface MlflowRegistryOptions {
  /** A ready client (tests); otherwise one is built from `clientOptions` / the environment. */
  client?: MlflowClient;
  /** Options for the client built when `client` is not given. */
  clientOptions?: MlflowClientOptions;
  /** Experiment for runs the registry creates itself. Default `driftline`. */
  experiment?: string;
  /** Artifact path of the model inside a run. Default `model`. */
  artifactPath?: string;
  /** Where `fetchArtifact` caches downloads (`<cacheDir>/<name>/<version>`). Default `.driftline/cache/mlflow`. */
  cacheDir?: string;
  /** Default poll interval of `watchChampion`, ms. Default 5000. */
  watchIntervalMs?: number;
  /** How long `registerVersion` waits for a version to become READY, ms. Default 60 000. */
  readyTimeoutMs?: number;
  /** Logger. Default: silent. */
  logger?: Logger;
}

/** Version tags owned by the registry. */
const MV = {
  checksum: 'driftline.checksum',
  files: 'driftline.files',
  metrics: 'driftline.metrics',
  artifactVersion: 'driftline.artifact_version',
  rejected: 'driftline.rejected',
  rejectedAt: 'driftline.rejected_at',
  rejectedCorrelationId: 'driftline.rejected_correlation_id',
  promotedAt: 'driftline.promoted_at',
  promotedBy: 'driftline.promoted_by',
  promotionReason: 'driftline.promotion_reason',
  versionSignature: 'driftline.version_signature',
} as const;

/** Registered-model tags owned by the registry. */
const RM = {
  historyPrefix: 'driftline.history.',
  previousChampion: 'driftline.previous_champion',
} as const;

const CHAMPION = 'champion';

/** Registration tags shown in `ModelVersion.tags` (the other `driftline.*` tags are bookkeeping). */
const VISIBLE_RESERVED = new Set<string>([TAG.correlationId, TAG.requestId, TAG.source]);

function tagMap(tags: readonly MlflowTag[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const tag of tags ?? []) out[tag.key] = tag.value;
  return out;
}

function championOf(model: MlflowRegisteredModel): string | undefined {
  return model.aliases?.find((a) => a.alias === CHAMPION)?.version;
}

function historyOf(model: MlflowRegisteredModel): AliasChange[] {
  const entries = (model.tags ?? [])
    .filter((t) => t.key.startsWith(RM.historyPrefix))
    .sort((a, b) => a.key.localeCompare(b.key));
  const out: AliasChange[] = [];
  for (const entry of entries) {
    try {
      out.push(JSON.parse(entry.value) as AliasChange);
    } catch {
      // A foreign or damaged tag: not part of Driftline's history.
    }
  }
  return out;
}

/** Resolved location of a version's files behind the artifact proxy. */
interface ArtifactLocation {
  /** Proxy path of the artifact directory (below `/api/2.0/mlflow-artifacts/artifacts/`). */
  proxyPath: string;
}

/** The MLflow-backed registry plus run helpers for the retrainer. See the module comment. */
export class MlflowRegistry implements ModelRegistry {
  readonly kind: string;
  /** The REST client (exposed for the retrainer's own run logging and for tests). */
  readonly client: MlflowClient;
  private readonly experiment: string;
  private readonly artifactPath: string;
  private readonly cacheDir: string;
  private readonly watchIntervalMs: number;
  private readonly readyTimeoutMs: number;
  private readonly logger: Logger;
  private readonly watchers = new Set<Unwatch>();

  constructor(options: MlflowRegistryOptions = {}) {
    this.logger = options.logger ?? silentLogger();
    this.client = options.client ?? new MlflowClient({ logger: this.logger, ...options.clientOptions });
    this.kind = `mlflow ${this.client.baseUrl}`;
    this.experiment = options.experiment ?? 'driftline';
    this.artifactPath = options.artifactPath ?? 'model';
    this.cacheDir = path.resolve(options.cacheDir ?? '.driftline/cache/mlflow');
    this.watchIntervalMs = options.watchIntervalMs ?? 5000;
    this.readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  }

  // ---- run helpers for the retrainer ---------------------------------------

  /** Creates (or finds) the experiment and starts a run with its params and tags. */
  async startRun(
    options: {
      experiment?: string;
      runName?: string;
      params?: Record<string, string | number | boolean>;
      tags?: Record<string, string>;
    } = {},
  ): Promise<{ runId: string; experimentId: string; artifactUri: string }> {
    const experimentId = await this.client.getOrCreateExperiment(options.experiment ?? this.experiment);
    const run = await this.client.createRun({
      experimentId,
      ...(options.runName ? { runName: options.runName } : {}),
      ...(options.tags ? { tags: options.tags } : {}),
    });
    const params = Object.entries(options.params ?? {}).map(([key, value]) => ({
      key,
      value: String(value),
    }));
    for (let i = 0; i < params.length; i += 100)
      await this.client.logBatch(run.info.run_id, { params: params.slice(i, i + 100) });
    this.logger.info('MLflow run started', {
      action: 'mlflow.run.start',
      runId: run.info.run_id,
      experimentId,
    });
    return { runId: run.info.run_id, experimentId, artifactUri: run.info.artifact_uri };
  }

  /** Logs metrics at one step (default 0), in batches of the server's 1000-metric limit. */
  async logMetrics(runId: string, metrics: Record<string, number>, step = 0): Promise<void> {
    const timestamp = Date.now();
    const list: MlflowMetric[] = Object.entries(finiteMetrics(metrics)).map(([key, value]) => ({
      key,
      value,
      timestamp,
      step,
    }));
    for (let i = 0; i < list.length; i += 1000)
      await this.client.logBatch(runId, { metrics: list.slice(i, i + 1000) });
  }

  /** Logs per-epoch metrics (`epochs[i]` at step i, or at `firstStep + i`): loss/accuracy curves in the MLflow UI. */
  async logEpochMetrics(
    runId: string,
    epochs: ReadonlyArray<Record<string, number>>,
    firstStep = 0,
  ): Promise<void> {
    const timestamp = Date.now();
    const list: MlflowMetric[] = [];
    epochs.forEach((metrics, i) => {
      for (const [key, value] of Object.entries(finiteMetrics(metrics)))
        list.push({ key, value, timestamp, step: firstStep + i });
    });
    for (let i = 0; i < list.length; i += 1000)
      await this.client.logBatch(runId, { metrics: list.slice(i, i + 1000) });
  }

  /**
   * Uploads every file under `dir` (recursively) to the run's `<artifactPath>/…`; returns the relative paths
   * uploaded.
   */
  async uploadArtifactDir(runId: string, artifactPath: string, dir: string): Promise<string[]> {
    const run = await this.client.getRun(runId);
    const base = `${proxyPathFromUri(run.info.artifact_uri)}/${artifactPath.replace(/^\/+|\/+$/g, '')}`;
    const files = await listFilesRecursive(dir);
    for (const rel of files)
      await this.client.uploadArtifact(`${base}/${rel}`, await readFile(path.join(dir, rel)));
    this.logger.info('uploaded artifact directory', {
      action: 'mlflow.artifacts.upload',
      runId,
      artifactPath,
      files: files.length,
    });
    return files;
  }

  /** Terminates a run (`FINISHED`, `FAILED` or `KILLED`). */
  async finishRun(
    runId: string,
    status: Exclude<MlflowRunStatus, 'RUNNING' | 'SCHEDULED'> = 'FINISHED',
  ): Promise<void> {
    await this.client.updateRun({ runId, status, endTime: Date.now() });
    this.logger.info('MLflow run finished', { action: 'mlflow.run.finish', runId, status });
  }

  // ---- reads -----------------------------------------------------------------

  private async registeredModel(name: string): Promise<MlflowRegisteredModel | undefined> {
    assertModelName(name);
    try {
      return await this.client.getRegisteredModel(name);
    } catch (err) {
      if (err instanceof MlflowNotFoundError) return undefined;
      throw err;
    }
  }

  private async modelVersion(name: string, version: string): Promise<MlflowModelVersion | undefined> {
    assertModelName(name);
    assertVersion(version);
    try {
      return await this.client.getModelVersion(name, version);
    } catch (err) {
      if (err instanceof MlflowNotFoundError) return undefined;
      throw err;
    }
  }

  private toModelVersion(mv: MlflowModelVersion, champion: string | undefined): ModelVersion {
    const tags = tagMap(mv.tags);
    let metrics: Record<string, number> = {};
    const metricsTag = tags[MV.metrics];
    try {
      if (metricsTag !== undefined) metrics = JSON.parse(metricsTag) as Record<string, number>;
    } catch {
      metrics = {};
    }
    const visible: Record<string, string> = {};
    for (const [key, value] of Object.entries(tags))
      if (!key.startsWith(RESERVED_PREFIX) || VISIBLE_RESERVED.has(key)) visible[key] = value;
    const rejectedReason = tags[MV.rejected];
    // "retired" = promoted once (a promotion tag) and not champion now.
    const status = deriveStatus(mv.version, {
      champion,
      rejected: rejectedReason !== undefined,
      everChampion: tags[MV.promotedAt] !== undefined,
    });
    return {
      name: mv.name,
      version: mv.version,
      createdAt: new Date(mv.creation_timestamp ?? 0).toISOString(),
      checksum: tags[MV.checksum] ?? '',
      status,
      ...(rejectedReason !== undefined ? { rejectedReason } : {}),
      metrics,
      tags: visible,
      ...(mv.run_id ? { runId: mv.run_id } : {}),
      ...(tags[MV.versionSignature] !== undefined ? { versionSignature: tags[MV.versionSignature] } : {}),
    };
  }

  async getVersion(name: string, version: string): Promise<ModelVersion | undefined> {
    const mv = await this.modelVersion(name, version);
    if (!mv) return undefined;
    const model = await this.registeredModel(name);
    return this.toModelVersion(mv, model ? championOf(model) : undefined);
  }

  async listVersions(name: string): Promise<ModelVersion[]> {
    const model = await this.registeredModel(name);
    if (!model) return [];
    const champion = championOf(model);
    const versions = await this.client.searchAllModelVersions(`name='${name}'`);
    return versions
      .map((mv) => this.toModelVersion(mv, champion))
      .sort((a, b) => compareVersions(a.version, b.version));
  }

  async getChampion(name: string): Promise<ModelVersion | undefined> {
    const model = await this.registeredModel(name);
    const champion = model ? championOf(model) : undefined;
    if (champion === undefined) return undefined;
    const mv = await this.modelVersion(name, champion);
    return mv ? this.toModelVersion(mv, champion) : undefined;
  }

  async history(name: string): Promise<AliasChange[]> {
    const model = await this.registeredModel(name);
    return model ? historyOf(model) : [];
  }

  // ---- registration -----------------------------------------------------------

  /** Makes sure the run's `<artifactPath>/` holds exactly this artifact (skips the upload when it already does). */
  private async ensureRunHasArtifact(
    runId: string,
    artifactDir: string,
    verified: VerifiedArtifact,
  ): Promise<void> {
    const run = await this.client.getRun(runId);
    const base = `${proxyPathFromUri(run.info.artifact_uri)}/${this.artifactPath}`;
    const listing = await this.client.listArtifacts(runId, this.artifactPath);
    const remote = new Map((listing.files ?? []).map((f) => [path.posix.basename(f.path), f.file_size]));
    let present = verified.files.every((f) => remote.get(f.name) === f.bytes) && remote.has(METADATA_FILE);
    if (present) {
      const remoteMetadata = await this.client.downloadArtifact(`${base}/${METADATA_FILE}`);
      present = sha256Bytes(remoteMetadata) === verified.checksum;
    }
    if (present) return;
    for (const file of verified.allFiles)
      await this.client.uploadArtifact(`${base}/${file}`, await readFile(path.join(artifactDir, file)));
  }

  private async ensureRegisteredModel(name: string): Promise<void> {
    try {
      await this.client.createRegisteredModel(name, {
        description: 'Driftline machine-efficiency classifier (TensorFlow.js); champion = alias "champion".',
      });
      this.logger.info('created MLflow registered model', { action: 'mlflow.model.create', name });
    } catch (err) {
      if (!(err instanceof MlflowAlreadyExistsError)) throw err;
    }
  }

  async registerVersion(name: string, artifactDir: string, info: RegisterInfo): Promise<ModelVersion> {
    assertModelName(name);
    const verified = await verifyArtifactFiles(artifactDir);
    await this.ensureRegisteredModel(name);

    let runId = info.runId;
    if (runId !== undefined) {
      await this.ensureRunHasArtifact(runId, artifactDir, verified);
    } else {
      const run = await this.startRun({ runName: `register-${name}`, tags: registrationTags(info) });
      runId = run.runId;
      try {
        await this.uploadArtifactDirFiles(run.artifactUri, verified, artifactDir);
        await this.logMetrics(runId, info.metrics);
        await this.finishRun(runId, 'FINISHED');
      } catch (err) {
        await this.finishRun(runId, 'FAILED').catch(() => undefined);
        throw err;
      }
    }

    const artifactVersion =
      typeof verified.metadata.version === 'string' ? verified.metadata.version : undefined;
    const tags: Record<string, string> = {
      ...registrationTags(info),
      [MV.checksum]: verified.checksum,
      [MV.files]: JSON.stringify(
        Object.fromEntries(verified.files.map((f) => [f.name, { sha256: f.sha256, bytes: f.bytes }])),
      ),
      [MV.metrics]: JSON.stringify(finiteMetrics(info.metrics)),
      ...(artifactVersion !== undefined ? { [MV.artifactVersion]: artifactVersion } : {}),
    };
    let mv = await this.client.createModelVersion({
      name,
      source: `runs:/${runId}/${this.artifactPath}`,
      runId,
      tags,
    });
    const deadline = Date.now() + this.readyTimeoutMs;
    while (mv.status === 'PENDING_REGISTRATION' && Date.now() < deadline) {
      await sleep(500);
      mv = await this.client.getModelVersion(name, mv.version);
    }
    if (mv.status === 'FAILED_REGISTRATION')
      throw new TransportError(
        `MLflow failed to register ${name} version ${mv.version}: ${mv.status_message ?? ''}`,
        { retriable: false },
      );
    if (mv.status === 'PENDING_REGISTRATION')
      throw new TransportError(
        `MLflow ${name} version ${mv.version} still pending after ${this.readyTimeoutMs} ms`,
      );
    this.logger.info('registered model version', {
      action: 'registry.register',
      name,
      modelVersion: mv.version,
      runId,
      checksum: verified.checksum,
      correlationId: info.correlationId,
    });
    const model = await this.registeredModel(name);
    return this.toModelVersion(mv, model ? championOf(model) : undefined);
  }

  private async uploadArtifactDirFiles(
    artifactUri: string,
    verified: VerifiedArtifact,
    dir: string,
  ): Promise<void> {
    const base = `${proxyPathFromUri(artifactUri)}/${this.artifactPath}`;
    for (const file of verified.allFiles)
      await this.client.uploadArtifact(`${base}/${file}`, await readFile(path.join(dir, file)));
  }

  // ---- artifacts ------------------------------------------------------------------

  private async locate(mv: MlflowModelVersion): Promise<ArtifactLocation> {
    const source = mv.source ?? '';
    const runs = /^runs:\/([^/]+)\/?(.*)$/.exec(source);
    if (runs) {
      const run = await this.client.getRun(runs[1] as string);
      const sub = (runs[2] ?? '').replace(/^\/+|\/+$/g, '');
      const root = proxyPathFromUri(run.info.artifact_uri);
      return { proxyPath: sub ? `${root}/${sub}` : root };
    }
    return { proxyPath: proxyPathFromUri(source) };
  }

  async fetchArtifact(name: string, version: string): Promise<string> {
    const mv = await this.modelVersion(name, version);
    if (!mv)
      throw new RegistryError(
        'REGISTRY_NOT_FOUND',
        `${name} version ${version} does not exist in ${this.kind}`,
      );
    const checksum = tagMap(mv.tags)[MV.checksum];
    if (!checksum)
      throw new ArtifactError(
        `${name} version ${version} has no ${MV.checksum} tag: it was ` +
          `not registered by Driftline, refusing to load it unverified`,
      );
    const target = path.join(this.cacheDir, name, version);

    try {
      await verifyArtifactFiles(target, checksum);
      return target;
    } catch (err) {
      if ((err as { cause?: { code?: string } }).cause?.code !== 'ENOENT') {
        this.logger.warn('cached artifact failed verification; downloading again', {
          name,
          modelVersion: version,
          err: describeError(err),
        });
      }
      await rm(target, { recursive: true, force: true });
    }

    const { proxyPath } = await this.locate(mv);
    await mkdir(path.dirname(target), { recursive: true });
    const tmp = await mkdtemp(`${target}.tmp-`);
    try {
      const metadataBytes = await this.client.downloadArtifact(`${proxyPath}/${METADATA_FILE}`);
      const actual = sha256Bytes(metadataBytes);
      if (actual !== checksum)
        throw new ArtifactError(
          `${name} version ${version}: downloaded ${METADATA_FILE} sha256 ` +
            `${actual} does not match the registered checksum ${checksum}`,
        );
      const { files } = parseListedFiles(metadataBytes, `${name} version ${version}`);
      await writeFile(path.join(tmp, METADATA_FILE), metadataBytes);
      for (const file of files)
        await writeFile(
          path.join(tmp, file.name),
          await this.client.downloadArtifact(`${proxyPath}/${file.name}`),
        );
      await verifyArtifactFiles(tmp, checksum);
      try {
        await rename(tmp, target);
      } catch (err) {
        // Another process finished the same download first: use theirs once it verifies.
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw err;
        await rm(tmp, { recursive: true, force: true });
        await verifyArtifactFiles(target, checksum);
      }
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
    this.logger.info('fetched model artifact', {
      action: 'registry.fetch',
      name,
      modelVersion: version,
      dir: target,
    });
    return target;
  }

  // ---- alias moves ------------------------------------------------------------------

  /** Refuses unknown, rejected or unready versions and verifies the files (download + checksums). */
  private async assertPromotable(name: string, version: string): Promise<MlflowModelVersion> {
    const mv = await this.modelVersion(name, version);
    if (!mv)
      throw new RegistryError(
        'REGISTRY_NOT_FOUND',
        `${name} version ${version} does not exist in ${this.kind}`,
      );
    const tags = tagMap(mv.tags);
    if (tags[MV.rejected] !== undefined)
      throw new RegistryError(
        'REGISTRY_STATE',
        `${name} version ${version} was rejected (${tags[MV.rejected]}); it cannot become champion`,
      );
    if (mv.status !== undefined && mv.status !== 'READY')
      throw new RegistryError('REGISTRY_STATE', `${name} version ${version} is ${mv.status}, not READY`);
    await this.fetchArtifact(name, version);
    return mv;
  }

  private async moveAlias(
    name: string,
    from: string | undefined,
    to: string,
    audit: AliasAudit,
    action: AliasChange['action'],
  ): Promise<AliasChange> {
    const change: AliasChange = {
      at: new Date().toISOString(),
      name,
      alias: 'champion',
      ...(from !== undefined ? { from } : {}),
      to,
      by: audit.by,
      reason: audit.reason,
      ...(audit.correlationId !== undefined ? { correlationId: audit.correlationId } : {}),
      action,
    };
    // The alias first: a crash afterwards loses an audit line, never invents a move.
    await this.client.setAlias(name, CHAMPION, to);
    const key = `${RM.historyPrefix}${String(Date.now()).padStart(15, '0')}-${randomBytes(3).toString('hex')}`;
    await this.client.setRegisteredModelTag(name, key, JSON.stringify(change));
    if (from !== undefined) await this.client.setRegisteredModelTag(name, RM.previousChampion, from);
    await this.client.setModelVersionTag(name, to, MV.promotedAt, change.at);
    await this.client.setModelVersionTag(name, to, MV.promotedBy, audit.by);
    await this.client.setModelVersionTag(name, to, MV.promotionReason, audit.reason);
    this.logger.info(action === 'rollback' ? 'champion rolled back' : 'champion promoted', {
      action: `registry.${action}`,
      name,
      modelVersion: to,
      from,
      by: audit.by,
      reason: audit.reason,
      correlationId: audit.correlationId,
    });
    return change;
  }

  async setChampion(name: string, version: string, audit: AliasAudit): Promise<void> {
    await this.assertPromotable(name, version);
    const model = await this.registeredModel(name);
    const from = model ? championOf(model) : undefined;
    if (from === version) {
      this.logger.info('champion unchanged: already points at this version', { name, modelVersion: version });
      return;
    }
    await this.moveAlias(name, from, version, audit, 'promote');
  }

  async rollback(name: string, audit: AliasAudit): Promise<ModelVersion> {
    const model = await this.registeredModel(name);
    const current = model ? championOf(model) : undefined;
    if (!model || current === undefined)
      throw new RegistryError('REGISTRY_NO_PREVIOUS', `${name} has no champion to roll back from`);
    const versions = await this.client.searchAllModelVersions(`name='${name}'`);
    const rejected = new Set(
      versions.filter((mv) => tagMap(mv.tags)[MV.rejected] !== undefined).map((mv) => mv.version),
    );
    const target = rollbackTarget(historyOf(model), current, (v) => rejected.has(v));
    if (target === undefined)
      throw new RegistryError(
        'REGISTRY_NO_PREVIOUS',
        `${name}: no previous champion before version ${current} to roll back to`,
      );
    await this.assertPromotable(name, target);
    await this.moveAlias(name, current, target, audit, 'rollback');
    const version = await this.getVersion(name, target);
    if (!version)
      throw new RegistryError('REGISTRY_NOT_FOUND', `${name} version ${target} vanished after rollback`);
    return version;
  }

  async setVersionSignature(name: string, version: string, signature: string): Promise<void> {
    if (!(await this.modelVersion(name, version)))
      throw new RegistryError(
        'REGISTRY_NOT_FOUND',
        `${name} version ${version} does not exist in ${this.kind}`,
      );
    await this.client.setModelVersionTag(name, version, MV.versionSignature, signature);
  }

  async markRejected(name: string, version: string, reason: string, correlationId?: string): Promise<void> {
    const mv = await this.modelVersion(name, version);
    if (!mv)
      throw new RegistryError(
        'REGISTRY_NOT_FOUND',
        `${name} version ${version} does not exist in ${this.kind}`,
      );
    const model = await this.registeredModel(name);
    if (model && championOf(model) === version)
      throw new RegistryError(
        'REGISTRY_STATE',
        `${name} version ${version} is the champion; roll back before rejecting it`,
      );
    await this.client.setModelVersionTag(name, version, MV.rejected, reason);
    await this.client.setModelVersionTag(name, version, MV.rejectedAt, new Date().toISOString());
    if (correlationId !== undefined)
      await this.client.setModelVersionTag(name, version, MV.rejectedCorrelationId, correlationId);
    this.logger.info('model version rejected', {
      action: 'registry.reject',
      name,
      modelVersion: version,
      reason,
      correlationId,
    });
  }

  // ---- watching ---------------------------------------------------------------------

  watchChampion(
    name: string,
    onChange: (champion: ModelVersion | undefined) => void,
    options: WatchOptions = {},
  ): Unwatch {
    assertModelName(name);
    const source: ChampionSource = {
      readChampion: async () => {
        const model = await this.registeredModel(name);
        return model ? championOf(model) : undefined;
      },
      loadVersion: (version) => this.getVersion(name, version),
    };
    const stop = pollChampion(source, onChange, {
      ...options,
      intervalMs: options.intervalMs ?? this.watchIntervalMs,
      logger: this.logger,
      name,
    });
    const unwatch: Unwatch = () => {
      stop();
      this.watchers.delete(unwatch);
    };
    this.watchers.add(unwatch);
    return unwatch;
  }

  async close(): Promise<void> {
    for (const unwatch of [...this.watchers]) unwatch();
  }
}

/** Relative POSIX paths of every regular file under `dir`, sorted. */
async function listFilesRecursive(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await listFilesRecursive(dir, rel)));
    else if (entry.isFile()) out.push(rel);
  }
  return out.sort();
}
