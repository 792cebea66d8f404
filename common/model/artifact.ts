import type * as tfjs from '@tensorflow/tfjs';
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { ArtifactError, describeError } from '../errors.ts';
import { fsyncDir } from '../util/atomic-file.ts';
import { METADATA_FILE, sha256Bytes } from './artifact-files.ts';
import { EFFICIENCY_CLASSES, FEATURES, OPERATION_MODES } from '../schema/features.ts';
import { type TfModel, type TrainedClassifier, predictEncoded, toClassProbabilities } from './classifier.ts';
import { INPUT_SIZE, NUM_CLASSES, checkScaler, encodeBatch } from './encode.ts';
import type { Tf } from './tf.ts';
import {
  DEFAULT_MODEL_NAME,
  type ClassProbabilities,
  type FeatureRow,
  type LoadedModel,
  type ModelMetadata,
  type ReferenceSample,
} from './types.ts';

/**
 * Model artifacts on disk. An artifact is a directory of four files:
 *
 * - `model.json` — tfjs layers topology and weights manifest,
 * - `weights.bin` — the weights,
 * - `reference.json` — {@link ReferenceSample} for the drift detector,
 * - `metadata.json` — {@link ModelMetadata}, including the sha256 and size of
 *   the three other files.
 *
 * Saving goes through `tf.io.withSaveHandler` and loading through
 * `tf.io.fromMemory`, so no tfjs file-system handler is needed and every
 * backend works. Writes are atomic (temp sibling directory, fsync, rename);
 * loads verify every checksum and the feature/mode/class contract first.
 */

/** The `format` of metadata.json this code writes and reads. */
export const ARTIFACT_FORMAT = 'driftline-model/1' as const;
/** tfjs topology and weights manifest. */
export const MODEL_FILE = 'model.json';
/** The weights, as tfjs encodes them. */
export const WEIGHTS_FILE = 'weights.bin';
/** The drift detector's reference sample. */
export const REFERENCE_FILE = 'reference.json';
/** Files whose checksums metadata.json lists. */
export const CHECKSUMMED_FILES = [MODEL_FILE, WEIGHTS_FILE, REFERENCE_FILE] as const;
/**
 * Every file of an artifact, metadata.json last (copy in this order: a present metadata.json marks a complete
 * copy).
 */
export const ARTIFACT_FILES = [...CHECKSUMMED_FILES, METADATA_FILE] as const;

/** sha256 (hex) and size of one file. */
export interface FileDigest {
  sha256: string;
  bytes: number;
}

/** Caller-supplied part of the metadata for {@link saveArtifact}. */
export interface ArtifactMeta {
  /** Default {@link DEFAULT_MODEL_NAME}. */
  name?: string;
  /** Registry version, or `bootstrap`. */
  version: string;
  /** Default: now. */
  createdAt?: string;
  /** Provenance (scenario file, sample window, correlation id…). */
  source?: Record<string, unknown>;
}

/** Options of {@link saveArtifact} and {@link copyArtifact}. */
export interface SaveOptions {
  /** Replace an existing directory at the destination. Default false: an existing destination is an ArtifactError. */
  overwrite?: boolean;
  /**
   * Called after each file is written (and fsynced) into the temporary
   * directory, before the rename. Meant for tests: throwing here simulates a
   * failure midway.
   */
  onFileWritten?(file: string): void | Promise<void>;
}

/**
 * Writes `trained` as an artifact directory at `dir`, atomically: all files go
 * into a temporary sibling directory, are fsynced, and the directory is renamed
 * into place; on any failure the temporary directory is removed and nothing
 * appears under `dir`. Returns the metadata written.
 */
export async function saveArtifact(
  dir: string,
  trained: TrainedClassifier,
  meta: ArtifactMeta,
  options: SaveOptions = {},
): Promise<ModelMetadata> {
  if (typeof meta.version !== 'string' || meta.version.trim() === '')
    throw new ArtifactError('an artifact needs a non-empty version');
  const { tf, model } = trained;
  const { modelJson, weights } = await serialiseModel(tf, model);
  const reference = JSON.stringify(trained.reference);
  const contents: Record<(typeof CHECKSUMMED_FILES)[number], Uint8Array> = {
    [MODEL_FILE]: Buffer.from(JSON.stringify(modelJson)),
    [WEIGHTS_FILE]: weights,
    [REFERENCE_FILE]: Buffer.from(reference),
  };
  const files: Record<string, FileDigest> = {};
  for (const name of CHECKSUMMED_FILES) files[name] = digest(contents[name]);
  const metadata: ModelMetadata = {
    format: ARTIFACT_FORMAT,
    name: meta.name ?? DEFAULT_MODEL_NAME,
    version: meta.version,
    createdAt: meta.createdAt ?? new Date().toISOString(),
    trainedWith: trained.backend,
    features: [...FEATURES],
    modes: [...OPERATION_MODES],
    classes: [...EFFICIENCY_CLASSES],
    scaler: { mean: [...trained.scaler.mean], std: [...trained.scaler.std] },
    validation: trained.validation,
    training: {
      samples: trained.samples,
      epochs: trained.epochs,
      seed: trained.seed,
      source: meta.source ?? {},
    },
    files,
  };
  await writeDirectoryAtomically(
    dir,
    [
      ...CHECKSUMMED_FILES.map((name) => ({ name, data: contents[name] })),
      { name: METADATA_FILE, data: Buffer.from(`${JSON.stringify(metadata, null, 2)}\n`) },
    ],
    options,
  );
  return metadata;
}

async function serialiseModel(
  tf: Tf,
  model: TfModel,
): Promise<{ modelJson: Record<string, unknown>; weights: Uint8Array }> {
  let captured: tfjs.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      captured = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!captured?.modelTopology || !captured.weightSpecs || captured.weightData === undefined) {
    throw new ArtifactError('tfjs did not hand over the model topology and weights');
  }
  const weights = new Uint8Array(tf.io.CompositeArrayBuffer.join(captured.weightData));
  const modelJson: Record<string, unknown> = {
    format: captured.format ?? 'layers-model',
    generatedBy: captured.generatedBy ?? null,
    convertedBy: captured.convertedBy ?? null,
    modelTopology: captured.modelTopology,
    weightsManifest: [{ paths: [WEIGHTS_FILE], weights: captured.weightSpecs }],
  };
  return { modelJson, weights };
}

/**
 * Loads and checks the artifact at `dir`: format, checksums and sizes of every
 * file, feature/mode/class lists, scaler, reference sample and network shape.
 * Anything wrong or incompatible throws an {@link ArtifactError} naming it.
 */
export async function loadArtifact(dir: string, tf: Tf): Promise<LoadedModel> {
  const { metadata, contents } = await readVerified(dir, true);
  const reference = parseReference(contents[REFERENCE_FILE], dir);
  const modelJson = parseJson(contents[MODEL_FILE], dir, MODEL_FILE) as Record<string, unknown>;
  const manifest = modelJson.weightsManifest;
  if (
    !Array.isArray(manifest) ||
    manifest.length !== 1 ||
    JSON.stringify((manifest[0] as { paths?: unknown })?.paths) !== JSON.stringify([WEIGHTS_FILE])
  ) {
    throw new ArtifactError(
      `artifact ${dir}: ${MODEL_FILE} must have one weights group stored in ${WEIGHTS_FILE}`,
    );
  }
  const weightSpecs = (manifest[0] as { weights?: unknown }).weights;
  if (
    !Array.isArray(weightSpecs) ||
    typeof modelJson.modelTopology !== 'object' ||
    modelJson.modelTopology === null
  ) {
    throw new ArtifactError(`artifact ${dir}: ${MODEL_FILE} lacks modelTopology or weight specs`);
  }
  const w = contents[WEIGHTS_FILE];
  const weightData = w.buffer.slice(w.byteOffset, w.byteOffset + w.byteLength) as ArrayBuffer;
  let model: TfModel;
  try {
    model = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: modelJson.modelTopology as object,
        weightSpecs: weightSpecs as tfjs.io.WeightsManifestEntry[],
        weightData,
      }),
    );
  } catch (err) {
    throw new ArtifactError(`artifact ${dir}: tfjs cannot build the model: ${describeError(err)}`, {
      cause: err,
    });
  }
  const inShape = JSON.stringify(model.inputs[0]?.shape);
  const outShape = JSON.stringify(model.outputs[0]?.shape);
  if (
    model.inputs.length !== 1 ||
    model.outputs.length !== 1 ||
    inShape !== JSON.stringify([null, INPUT_SIZE]) ||
    outShape !== JSON.stringify([null, NUM_CLASSES])
  ) {
    model.dispose();
    throw new ArtifactError(
      `artifact ${dir} is incompatible: the network maps ${inShape} to ${outShape}, ` +
        `this worker needs [null,${INPUT_SIZE}] to [null,${NUM_CLASSES}]`,
    );
  }
  return new ArtifactModel(tf, model, metadata, reference, dir);
}

/** A champion's weights and scaler, to warm-start a retrain from (see `TrainOptions.initial`). */
export interface WarmStart {
  weights: tfjs.Tensor[];
  scaler: ModelMetadata['scaler'];
  /** Frees the weight tensors. */
  dispose(): void;
}

/**
 * Loads (and verifies, like {@link loadArtifact}) the artifact at `dir` and returns copies of its weights and
 * its scaler.
 */
export async function loadWarmStart(dir: string, tf: Tf): Promise<WarmStart> {
  const loaded = (await loadArtifact(dir, tf)) as ArtifactModel;
  try {
    const weights = loaded.cloneWeights();
    return { weights, scaler: loaded.metadata.scaler, dispose: () => weights.forEach((w) => w.dispose()) };
  } finally {
    loaded.dispose();
  }
}

/** A {@link LoadedModel} backed by a tfjs layers model. */
class ArtifactModel implements LoadedModel {
  private disposed = false;
  constructor(
    private readonly tf: Tf,
    private readonly model: TfModel,
    readonly metadata: ModelMetadata,
    readonly reference: ReferenceSample,
    readonly dir: string,
  ) {}

  predict(rows: readonly FeatureRow[]): ClassProbabilities[] {
    if (this.disposed) throw new Error(`model ${this.metadata.name}@${this.metadata.version} was disposed`);
    if (rows.length === 0) return [];
    return toClassProbabilities(
      predictEncoded(this.tf, this.model, encodeBatch(rows, this.metadata.scaler), rows.length),
    );
  }

  /** Copies of the network's weights (the caller disposes them). */
  cloneWeights(): tfjs.Tensor[] {
    return this.model.getWeights().map((w) => w.clone());
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.model.dispose();
  }
}

/**
 * Checks the artifact at `dir` without loading tfjs: metadata format, and the
 * size and sha256 of every file it lists; with `compatibility` (default true)
 * also the feature, mode and class lists and the scaler. Returns the metadata;
 * throws an {@link ArtifactError} on any problem.
 */
export async function verifyArtifact(
  dir: string,
  options: { compatibility?: boolean } = {},
): Promise<ModelMetadata> {
  const { metadata } = await readVerified(dir, options.compatibility ?? true);
  return metadata;
}

/** Reads the metadata without verifying the other files (for listings). Throws ArtifactError when unreadable. */
export async function readMetadata(dir: string): Promise<ModelMetadata> {
  return parseMetadata(await readArtifactFile(dir, METADATA_FILE), dir);
}

async function readVerified(
  dir: string,
  compatibility: boolean,
): Promise<{ metadata: ModelMetadata; contents: Record<(typeof CHECKSUMMED_FILES)[number], Buffer> }> {
  const metadata = await readMetadata(dir);
  if (compatibility) checkCompatibility(metadata, dir);
  const contents = {} as Record<(typeof CHECKSUMMED_FILES)[number], Buffer>;
  for (const name of CHECKSUMMED_FILES) {
    const expected = metadata.files[name] as FileDigest;
    const data = await readArtifactFile(dir, name);
    if (data.byteLength !== expected.bytes) {
      throw new ArtifactError(
        `artifact ${dir}: ${name} is ${data.byteLength} bytes, ` +
          `metadata.json says ${expected.bytes} (truncated or replaced)`,
      );
    }
    const actual = sha256Bytes(data);
    if (actual !== expected.sha256) {
      throw new ArtifactError(
        `artifact ${dir}: checksum mismatch for ${name}: sha256 ` +
          `${actual}, metadata.json says ${expected.sha256} (corrupted)`,
      );
    }
    contents[name] = data;
  }
  return { metadata, contents };
}

async function readArtifactFile(dir: string, name: string): Promise<Buffer> {
  try {
    return await readFile(path.join(dir, name));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'is missing' : `cannot be read (${describeError(err)})`;
    throw new ArtifactError(`artifact ${dir}: ${name} ${why}`, { cause: err });
  }
}

function parseJson(data: Buffer, dir: string, name: string): unknown {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new ArtifactError(`artifact ${dir}: ${name} is not valid JSON: ${describeError(err)}`, {
      cause: err,
    });
  }
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

function parseMetadata(data: Buffer, dir: string): ModelMetadata {
  const m = parseJson(data, dir, METADATA_FILE) as Partial<ModelMetadata> | null;
  if (typeof m !== 'object' || m === null || Array.isArray(m))
    throw new ArtifactError(`artifact ${dir}: ${METADATA_FILE} is not a JSON object`);
  if (m.format !== ARTIFACT_FORMAT) {
    throw new ArtifactError(
      `artifact ${dir} has format ${JSON.stringify(m.format)}, this worker reads ${ARTIFACT_FORMAT}`,
    );
  }
  for (const key of ['name', 'version', 'createdAt', 'trainedWith'] as const) {
    if (typeof m[key] !== 'string')
      throw new ArtifactError(`artifact ${dir}: ${METADATA_FILE} field ${key} must be a string`);
  }
  for (const key of ['features', 'modes', 'classes'] as const) {
    const v = m[key];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
      throw new ArtifactError(`artifact ${dir}: ${METADATA_FILE} field ${key} must be a list of names`);
  }
  if (typeof m.scaler !== 'object' || m.scaler === null)
    throw new ArtifactError(`artifact ${dir}: ${METADATA_FILE} lacks the scaler`);
  if (typeof m.validation !== 'object' || m.validation === null)
    throw new ArtifactError(`artifact ${dir}: ${METADATA_FILE} lacks validation metrics`);
  if (typeof m.training !== 'object' || m.training === null)
    throw new ArtifactError(`artifact ${dir}: ${METADATA_FILE} lacks training details`);
  if (typeof m.files !== 'object' || m.files === null)
    throw new ArtifactError(`artifact ${dir}: ${METADATA_FILE} lacks the files list`);
  for (const name of CHECKSUMMED_FILES) {
    const f = (m.files as Record<string, Partial<FileDigest> | undefined>)[name];
    if (
      !f ||
      typeof f.sha256 !== 'string' ||
      !SHA256_HEX.test(f.sha256) ||
      !Number.isInteger(f.bytes) ||
      (f.bytes as number) < 0
    ) {
      throw new ArtifactError(`artifact ${dir}: ${METADATA_FILE} has no valid sha256 and size for ${name}`);
    }
  }
  return m as ModelMetadata;
}

/**
 * Throws an {@link ArtifactError} naming what differs when `metadata` was
 * trained on other features, modes or classes than this build uses, or its
 * scaler does not fit them.
 */
export function checkCompatibility(metadata: ModelMetadata, dir = metadata.name): void {
  const problems: string[] = [];
  const compare = (what: string, theirs: readonly string[], ours: readonly string[]): void => {
    if (JSON.stringify(theirs) === JSON.stringify(ours)) return;
    const missing = ours.filter((x) => !theirs.includes(x));
    const extra = theirs.filter((x) => !ours.includes(x));
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`missing ${missing.join(', ')}`);
    if (extra.length > 0) parts.push(`unknown ${extra.join(', ')}`);
    if (parts.length === 0) parts.push('different order');
    problems.push(
      `${what} [${theirs.join(', ')}] differ from this worker's [${ours.join(', ')}] (${parts.join('; ')})`,
    );
  };
  compare('features', metadata.features, FEATURES);
  compare('operation modes', metadata.modes, OPERATION_MODES);
  compare('classes', metadata.classes, EFFICIENCY_CLASSES);
  if (problems.length === 0) {
    try {
      checkScaler(metadata.scaler);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  if (problems.length > 0) throw new ArtifactError(`artifact ${dir} is incompatible: ${problems.join('; ')}`);
}

function parseReference(data: Buffer, dir: string): ReferenceSample {
  const r = parseJson(data, dir, REFERENCE_FILE) as Partial<ReferenceSample> | null;
  const bad = (why: string): never => {
    throw new ArtifactError(`artifact ${dir}: ${REFERENCE_FILE} ${why}`);
  };
  if (
    typeof r !== 'object' ||
    r === null ||
    typeof r.size !== 'number' ||
    typeof r.features !== 'object' ||
    r.features === null
  )
    return bad('is not a reference sample');
  for (const f of FEATURES) {
    const values = (r.features as Record<string, unknown>)[f];
    if (!Array.isArray(values) || values.length !== r.size || !values.every((v) => typeof v === 'number'))
      bad(`has no ${r.size} numbers for ${f}`);
  }
  if (
    typeof r.classShares !== 'object' ||
    r.classShares === null ||
    !EFFICIENCY_CLASSES.every((c) => typeof (r.classShares as Record<string, unknown>)[c] === 'number')
  ) {
    bad('lacks class shares');
  }
  return r as ReferenceSample;
}

function digest(data: Uint8Array): FileDigest {
  return { sha256: sha256Bytes(data), bytes: data.byteLength };
}

/**
 * sha256 and size of every regular file directly inside `dir` (sorted by
 * name; subdirectories and symlinks are skipped). For registries checking a
 * copy against its source.
 */
export async function hashDirectory(dir: string): Promise<Record<string, FileDigest>> {
  const out: Record<string, FileDigest> = {};
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (!e.isFile()) continue;
    out[e.name] = digest(await readFile(path.join(dir, e.name)));
  }
  return out;
}

/**
 * The files of the artifact at `dir` in copy order (metadata.json last), with
 * absolute paths and sizes. Throws an {@link ArtifactError} when one is missing
 * or not a regular file.
 */
export async function artifactFiles(
  dir: string,
): Promise<Array<{ name: string; path: string; bytes: number }>> {
  const out: Array<{ name: string; path: string; bytes: number }> = [];
  for (const name of ARTIFACT_FILES) {
    const p = path.resolve(dir, name);
    try {
      const st = await lstat(p);
      if (!st.isFile()) throw new ArtifactError(`artifact ${dir}: ${name} is not a regular file`);
      out.push({ name, path: p, bytes: st.size });
    } catch (err) {
      if (err instanceof ArtifactError) throw err;
      throw new ArtifactError(`artifact ${dir}: ${name} is missing`, { cause: err });
    }
  }
  return out;
}

/**
 * Copies the artifact at `src` to `dest`: verifies the source's checksums,
 * writes atomically like {@link saveArtifact}, and returns the metadata.
 * Compatibility is not checked (a registry may hold other formats' features).
 */
export async function copyArtifact(
  src: string,
  dest: string,
  options: SaveOptions = {},
): Promise<ModelMetadata> {
  const metadata = await verifyArtifact(src, { compatibility: false });
  const files: Array<{ name: string; data: Uint8Array }> = [];
  for (const f of await artifactFiles(src))
    files.push({ name: f.name, data: await readArtifactFile(src, f.name) });
  // The checksummed files were verified above; re-check what was just read (it could have changed since).
  for (const f of files) {
    const expected = metadata.files[f.name];
    if (expected && sha256Bytes(f.data) !== expected.sha256)
      throw new ArtifactError(`artifact ${src}: ${f.name} changed while being copied`);
  }
  await writeDirectoryAtomically(dest, files, options);
  return metadata;
}

/**
 * Writes `files` into a fresh directory at `dir`, atomically: a temporary
 * hidden sibling directory is filled, every file and the directory are
 * fsynced, and the directory is renamed to `dir`. On failure the temporary
 * directory is removed and `dir` is untouched.
 */
export async function writeDirectoryAtomically(
  dir: string,
  files: ReadonlyArray<{ name: string; data: Uint8Array }>,
  options: SaveOptions = {},
): Promise<void> {
  const target = path.resolve(dir);
  const parent = path.dirname(target);
  const base = path.basename(target);
  for (const f of files) {
    if (f.name !== path.basename(f.name) || f.name === '.' || f.name === '..')
      throw new ArtifactError(`invalid artifact file name ${JSON.stringify(f.name)}`);
  }
  if (!options.overwrite && (await exists(target)))
    throw new ArtifactError(`artifact directory ${target} already exists`);
  await mkdir(parent, { recursive: true });
  const tmp = path.join(parent, `.${base}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp);
  let old: string | undefined;
  try {
    for (const f of files) {
      const fh = await open(
        path.join(tmp, f.name),
        fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL,
        0o644,
      );
      try {
        await fh.writeFile(f.data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await options.onFileWritten?.(f.name);
    }
    await fsyncDir(tmp, { strict: true });
    if (await exists(target)) {
      if (!options.overwrite) throw new ArtifactError(`artifact directory ${target} already exists`);
      old = path.join(parent, `.${base}.old-${process.pid}-${randomBytes(4).toString('hex')}`);
      await rename(target, old);
    }
    try {
      await rename(tmp, target);
    } catch (err) {
      if (old) await rename(old, target).catch(() => undefined);
      old = undefined;
      throw err;
    }
    await fsyncDir(parent, { strict: true });
  } catch (err) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw err instanceof ArtifactError
      ? err
      : new ArtifactError(`cannot write artifact ${target}: ${describeError(err)}`, { cause: err });
  }
  if (old) await rm(old, { recursive: true, force: true }).catch(() => undefined);
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}
