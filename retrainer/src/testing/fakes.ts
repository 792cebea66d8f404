import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RetrainRequest } from '../../../common/events/schemas.ts';
import {
  DEFAULT_MODEL_NAME,
  type ClassProbabilities,
  type EvalMetrics,
  type FeatureRow,
  type LoadedModel,
  type ModelMetadata,
  type ReferenceSample,
} from '../../../common/model/types.ts';
import { sha256Bytes } from '../../../common/model/artifact-files.ts';
import { RegistryError } from '../../../common/registry/errors.ts';
import type {
  AliasAudit,
  AliasChange,
  ModelRegistry,
  ModelVersion,
  RegisterInfo,
  Unwatch,
} from '../../../common/registry/types.ts';
import type { LabelledSample } from '../../../common/samples/types.ts';
import { FEATURES, OPERATION_MODES, SEED_RANGES, type Efficiency } from '../../../common/schema/features.ts';
import { Rng } from '../../../common/util/rng.ts';
import {
  TrainingTimeoutError,
  type TrainJob,
  type Trainer,
  type TrainResult,
  type TrainRunOptions,
} from '../trainer.ts';

/**
 * Test doubles for the retrainer's unit tests: a labelling rule and sample
 * generator, fake "models" described by a small JSON spec (no tfjs), a fake
 * trainer that writes such a spec, and an in-memory model registry.
 */

/** Labels a row: the seed dataset's rule (High: speed > 400 and errors < 2; Medium: speed > 200 and errors < 5). */
export function seedLabel(row: FeatureRow, speedShift = 0): Efficiency {
  const s = row.productionSpeedUph + speedShift;
  const e = row.errorRatePct;
  if (s > 400 && e < 2) return 'High';
  if (s > 200 && e < 5) return 'Medium';
  return 'Low';
}

/**
 * `n` samples with consecutive ts (1 s apart from `startTs`) and sample indices from `startIndex`, labelled
 * by `label`.
 */
export function makeSamples(
  n: number,
  options: {
    startIndex?: number;
    startTs?: number;
    seed?: number;
    label?: (row: FeatureRow) => Efficiency;
    machines?: number;
  } = {},
): LabelledSample[] {
  const rng = new Rng(options.seed ?? 7);
  const start = options.startIndex ?? 0;
  const startTs = options.startTs ?? 1_700_000_000_000;
  const machines = options.machines ?? 4;
  const label = options.label ?? ((r: FeatureRow) => seedLabel(r));
  const out: LabelledSample[] = [];
  for (let i = 0; i < n; i++) {
    const row = { operationMode: OPERATION_MODES[rng.weighted([70, 20, 10])] } as FeatureRow;
    for (const f of FEATURES)
      row[f] = Math.round(rng.uniform(SEED_RANGES[f][0], SEED_RANGES[f][1]) * 1000) / 1000;
    const idx = start + i;
    out.push({
      machineId: `m-${idx % machines}`,
      seq: idx,
      ts: startTs + idx * 1000,
      sampleIndex: idx,
      row,
      label: label(row),
    });
  }
  return out;
}

/** A retrain request that passes the schema; override any field. */
export function makeRequest(overrides: Partial<RetrainRequest> = {}): RetrainRequest {
  const requestId =
    overrides.requestId ?? createHash('sha256').update(JSON.stringify(overrides)).digest('hex').slice(0, 32);
  return {
    type: 'retrain-request',
    requestId,
    correlationId: `corr-${requestId.slice(0, 8)}`,
    modelName: DEFAULT_MODEL_NAME,
    championVersion: '1',
    kind: 'concept',
    requestedAt: 1_700_000_000_000,
    features: [],
    window: { fromTs: 1_700_000_000_000, toTs: 1_700_000_000_000 + 10_000_000 },
    liveAccuracy: 0.6,
    validationAccuracy: 0.97,
    groupKey: 'all',
    ...overrides,
  };
}

/**
 * What a fake model predicts: `oracle` applies the seed rule shifted by
 * `speedShift`; `constant` always says `label`. `errorRate` flips a
 * deterministic share of predictions to a wrong class.
 */
export type FakeModelSpec =
  { kind: 'oracle'; speedShift?: number; errorRate?: number } | { kind: 'constant'; label: Efficiency };

const FAKE_FILE = 'fake-model.json';

function rowHash(row: FeatureRow): number {
  let h = 2166136261;
  for (const f of FEATURES) {
    h ^= Math.round(row[f] * 1000);
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h / 2 ** 32;
}

/** Predictions of a fake model. */
export function fakePredict(spec: FakeModelSpec, row: FeatureRow): Efficiency {
  if (spec.kind === 'constant') return spec.label;
  const label = seedLabel(row, spec.speedShift ?? 0);
  if ((spec.errorRate ?? 0) > 0 && rowHash(row) < (spec.errorRate as number))
    return label === 'Low' ? 'Medium' : 'Low';
  return label;
}

const EMPTY_METRICS: EvalMetrics = {
  samples: 0,
  accuracy: 0,
  macroF1: 0,
  perClassRecall: { Low: 0, Medium: 0, High: 0 },
  perClassF1: { Low: 0, Medium: 0, High: 0 },
  logLoss: 0,
  confusion: [],
};

/** Writes a fake artifact (the spec, and a metadata.json the retrainer can sign) into `dir`. */
export async function writeFakeArtifact(dir: string, spec: FakeModelSpec): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, FAKE_FILE), JSON.stringify(spec));
  await fs.writeFile(path.join(dir, 'metadata.json'), JSON.stringify({ format: 'driftline-fake/1', spec }));
}

/** Loads a fake artifact as a {@link LoadedModel} (the retrainer's `loadModel` dependency). */
export async function loadFakeModel(dir: string): Promise<LoadedModel> {
  const spec = JSON.parse(await fs.readFile(path.join(dir, FAKE_FILE), 'utf8')) as FakeModelSpec;
  return {
    metadata: { name: 'fake', version: 'candidate' } as ModelMetadata,
    reference: {} as ReferenceSample,
    dir,
    predict(rows) {
      return rows.map((r): ClassProbabilities => {
        const efficiency = fakePredict(spec, r);
        const probabilities = { Low: 0.05, Medium: 0.05, High: 0.05 };
        probabilities[efficiency] = 0.9;
        return { efficiency, probabilities };
      });
    },
    dispose() {},
  };
}

/** Options of {@link FakeTrainer}. */
export interface FakeTrainerOptions {
  /** The model each training produces. Default: an oracle. */
  spec?: FakeModelSpec | ((job: TrainJob) => FakeModelSpec);
  /** How long a training takes, ms. Default 0. */
  delayMs?: number;
  /** Makes every training fail with this error. */
  fail?: Error;
  /** Each training waits (up to 2 s) until this many run at once: proves trainings can overlap. */
  waitForConcurrent?: number;
}

/** A trainer that "trains" by writing a fake model spec; records calls and overlap. */
export class FakeTrainer implements Trainer {
  readonly kind = 'fake';
  readonly jobs: TrainJob[] = [];
  active = 0;
  maxActive = 0;
  constructor(private readonly options: FakeTrainerOptions = {}) {}

  async train(job: TrainJob, run: TrainRunOptions): Promise<TrainResult> {
    this.jobs.push(job);
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      const delay = this.options.delayMs ?? 0;
      if (delay > run.timeoutMs) {
        await new Promise((r) => setTimeout(r, run.timeoutMs));
        throw new TrainingTimeoutError(run.timeoutMs);
      }
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      const want = this.options.waitForConcurrent ?? 0;
      for (let waited = 0; this.maxActive < want && waited < 2000; waited += 5)
        await new Promise((r) => setTimeout(r, 5));
      if (this.options.fail) throw this.options.fail;
      const spec =
        typeof this.options.spec === 'function'
          ? this.options.spec(job)
          : (this.options.spec ?? { kind: 'oracle' });
      await writeFakeArtifact(job.outDir, spec);
      return {
        dir: job.outDir,
        validation: EMPTY_METRICS,
        epochs: 1,
        bestEpoch: 1,
        samples: job.train.length,
        backend: 'fake',
        durationMs: delay,
      };
    } finally {
      this.active--;
    }
  }
}

interface StoredVersion {
  version: ModelVersion;
  spec: FakeModelSpec;
  /** metadata.json as registered (parsed), when the artifact had one. */
  metadata?: unknown;
}

/** An in-memory {@link ModelRegistry} over fake artifacts; `failSetChampion` injects a failure in the alias move. */
export class MemoryRegistry implements ModelRegistry {
  readonly kind = 'memory';
  private readonly models = new Map<
    string,
    { versions: StoredVersion[]; champion?: string; history: AliasChange[] }
  >();
  private root: string | undefined;
  /** When set, `setChampion` throws it (before the alias moves). */
  failSetChampion: Error | undefined;
  readonly calls: string[] = [];

  private model(name: string): { versions: StoredVersion[]; champion?: string; history: AliasChange[] } {
    let m = this.models.get(name);
    if (!m) {
      m = { versions: [], history: [] };
      this.models.set(name, m);
    }
    return m;
  }

  /** Registers `spec` as a version and makes it champion (test set-up). */
  async seedChampion(name: string, spec: FakeModelSpec): Promise<string> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'driftline-fake-art-'));
    await writeFakeArtifact(dir, spec);
    const v = await this.registerVersion(name, dir, { correlationId: 'seed', metrics: {} });
    await this.setChampion(name, v.version, { by: 'test', reason: 'seed' });
    this.calls.length = 0;
    await fs.rm(dir, { recursive: true, force: true });
    return v.version;
  }

  async registerVersion(name: string, artifactDir: string, info: RegisterInfo): Promise<ModelVersion> {
    this.calls.push(`register`);
    const spec = JSON.parse(await fs.readFile(path.join(artifactDir, FAKE_FILE), 'utf8')) as FakeModelSpec;
    const metadataText = await fs
      .readFile(path.join(artifactDir, 'metadata.json'), 'utf8')
      .catch(() => undefined);
    let metadata: unknown;
    try {
      metadata = metadataText === undefined ? undefined : JSON.parse(metadataText);
    } catch {
      metadata = undefined;
    }
    const m = this.model(name);
    const version: ModelVersion = {
      name,
      version: String(m.versions.length + 1),
      createdAt: new Date().toISOString(),
      // The sha256 of metadata.json, as the real registries record it ('fake' without one).
      checksum: metadataText === undefined ? 'fake' : sha256Bytes(Buffer.from(metadataText, 'utf8')),
      status: 'candidate',
      metrics: info.metrics,
      tags: {
        ...(info.tags ?? {}),
        'driftline.correlation_id': info.correlationId,
        ...(info.requestId ? { 'driftline.request_id': info.requestId } : {}),
      },
    };
    m.versions.push({ version, spec, ...(metadata !== undefined ? { metadata } : {}) });
    return { ...version };
  }

  /** The metadata.json registered with `version` (parsed), if its artifact had one. */
  registeredMetadata(name: string, version: string): unknown {
    return this.models.get(name)?.versions.find((s) => s.version.version === version)?.metadata;
  }

  async getChampion(name: string): Promise<ModelVersion | undefined> {
    const m = this.models.get(name);
    return m?.champion ? this.getVersion(name, m.champion) : undefined;
  }

  async getVersion(name: string, version: string): Promise<ModelVersion | undefined> {
    const v = this.models.get(name)?.versions.find((s) => s.version.version === version);
    return v ? { ...v.version } : undefined;
  }

  async listVersions(name: string): Promise<ModelVersion[]> {
    return (this.models.get(name)?.versions ?? []).map((s) => ({ ...s.version }));
  }

  async setChampion(name: string, version: string, audit: AliasAudit): Promise<void> {
    this.calls.push(`setChampion ${version}`);
    if (this.failSetChampion) throw this.failSetChampion;
    const m = this.model(name);
    const v = m.versions.find((s) => s.version.version === version);
    if (!v) throw new RegistryError('REGISTRY_NOT_FOUND', `no version ${version}`);
    if (v.version.status === 'rejected')
      throw new RegistryError('REGISTRY_STATE', `version ${version} was rejected`);
    const prev = m.champion ? m.versions.find((s) => s.version.version === m.champion) : undefined;
    if (prev) prev.version.status = 'retired';
    v.version.status = 'champion';
    m.history.push({
      at: new Date().toISOString(),
      name,
      alias: 'champion',
      ...(m.champion ? { from: m.champion } : {}),
      to: version,
      by: audit.by,
      reason: audit.reason,
      correlationId: audit.correlationId,
      action: 'promote',
    });
    m.champion = version;
  }

  async setVersionSignature(name: string, version: string, signature: string): Promise<void> {
    this.calls.push(`setVersionSignature ${version}`);
    const v = this.models.get(name)?.versions.find((s) => s.version.version === version);
    if (!v) throw new RegistryError('REGISTRY_NOT_FOUND', `no version ${version}`);
    v.version.versionSignature = signature;
  }

  async markRejected(name: string, version: string, reason: string): Promise<void> {
    this.calls.push(`markRejected ${version}`);
    const v = this.models.get(name)?.versions.find((s) => s.version.version === version);
    if (!v) throw new RegistryError('REGISTRY_NOT_FOUND', `no version ${version}`);
    v.version.status = 'rejected';
    v.version.rejectedReason = reason;
  }

  async rollback(): Promise<ModelVersion> {
    throw new RegistryError('REGISTRY_NO_PREVIOUS', 'not supported by the fake');
  }

  async history(name: string): Promise<AliasChange[]> {
    return [...(this.models.get(name)?.history ?? [])];
  }

  async fetchArtifact(name: string, version: string): Promise<string> {
    const v = this.models.get(name)?.versions.find((s) => s.version.version === version);
    if (!v) throw new RegistryError('REGISTRY_NOT_FOUND', `no version ${version}`);
    this.root ??= await fs.mkdtemp(path.join(os.tmpdir(), 'driftline-fake-registry-'));
    const dir = path.join(this.root, name, version);
    await writeFakeArtifact(dir, v.spec);
    return dir;
  }

  watchChampion(): Unwatch {
    return () => undefined;
  }

  async close(): Promise<void> {
    if (this.root) await fs.rm(this.root, { recursive: true, force: true });
  }
}
