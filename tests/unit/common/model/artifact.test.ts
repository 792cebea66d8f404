import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArtifactError } from '../../../../common/errors.ts';
import {
  ARTIFACT_FILES,
  artifactFiles,
  copyArtifact,
  hashDirectory,
  loadArtifact,
  readMetadata,
  saveArtifact,
  verifyArtifact,
} from '../../../../common/model/artifact.ts';
import { sha256Bytes as sha256 } from '../../../../common/model/artifact-files.ts';
import { predictRows, trainClassifier, type TrainedClassifier } from '../../../../common/model/classifier.ts';
import { loadTf, type Tf } from '../../../../common/model/tf.ts';
import type { FeatureRow, LabelledRow } from '../../../../common/model/types.ts';
import {
  FEATURES,
  OPERATION_MODES,
  SEED_RANGES,
  type Efficiency,
} from '../../../../common/schema/features.ts';
import { Rng } from '../../../../common/util/rng.ts';

/** The seed profile: features uniform on SEED_RANGES, modes 70/20/10 %, the public dataset's rule. */
function seedProfile(n: number, seed: number): LabelledRow[] {
  const rng = new Rng(seed);
  const out: LabelledRow[] = [];
  for (let i = 0; i < n; i++) {
    const row = { operationMode: OPERATION_MODES[rng.weighted([0.7, 0.2, 0.1])] } as FeatureRow;
    for (const f of FEATURES) row[f] = rng.uniform(SEED_RANGES[f][0], SEED_RANGES[f][1]);
    const speed = row.productionSpeedUph;
    const error = row.errorRatePct;
    const label: Efficiency = speed > 400 && error < 2 ? 'High' : speed > 200 && error < 5 ? 'Medium' : 'Low';
    out.push({ row, label });
  }
  return out;
}

let tf: Tf;
let trained: TrainedClassifier;
let root: string;
const rows = seedProfile(300, 77).map((d) => d.row);

beforeAll(async () => {
  ({ tf } = await loadTf());
  trained = await trainClassifier(tf, seedProfile(800, 1), { epochs: 3, seed: 2 });
  root = await mkdtemp(path.join(tmpdir(), 'driftline-artifact-'));
});

afterAll(async () => {
  trained?.model.dispose();
  if (root) await rm(root, { recursive: true, force: true });
});

/** A fresh saved artifact in its own parent directory. */
async function saved(name: string): Promise<string> {
  const dir = path.join(root, name, 'model');
  await saveArtifact(dir, trained, { version: name, source: { test: true } });
  return dir;
}

describe('saveArtifact / loadArtifact', () => {
  it('round-trips: the loaded model predicts exactly what the trained one does', async () => {
    const dir = await saved('roundtrip');
    expect((await readdir(dir)).sort()).toEqual([...ARTIFACT_FILES].sort());
    const before = tf.memory().numTensors;
    const loaded = await loadArtifact(dir, tf);
    expect(loaded.dir).toBe(dir);
    expect(loaded.metadata).toMatchObject({
      format: 'driftline-model/1',
      name: 'driftline-efficiency',
      version: 'roundtrip',
      trainedWith: trained.backend,
      features: [...FEATURES],
      classes: ['Low', 'Medium', 'High'],
      training: { samples: trained.samples, epochs: 3, seed: 2, source: { test: true } },
    });
    expect(loaded.metadata.scaler).toEqual(trained.scaler);
    expect(loaded.metadata.validation).toEqual(trained.validation);
    expect(loaded.reference).toEqual(trained.reference);
    const expected = predictRows(tf, trained.model, trained.scaler, rows);
    expect(loaded.predict(rows)).toEqual(expected);
    expect(loaded.predict([])).toEqual([]);
    expect(loaded.predict([rows[5]!])).toEqual([expected[5]]);
    const p = expected[0]!.probabilities;
    expect(p.Low + p.Medium + p.High).toBeCloseTo(1, 5);
    // predict leaks no tensors; dispose frees the model's weights.
    expect(tf.memory().numTensors).toBe(before + 6);
    loaded.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(() => loaded.predict(rows)).toThrow(/disposed/);
  });

  it('runs one model execution per batch: a 64-row batch dispatches the same kernels as a single row', async () => {
    const loaded = await loadArtifact(await saved('one-op'), tf);
    const one = await tf.profile(() => void loaded.predict(rows.slice(0, 1)));
    const many = await tf.profile(() => void loaded.predict(rows.slice(0, 64)));
    expect(one.kernels.length).toBeGreaterThan(0);
    expect(many.kernels.length).toBe(one.kernels.length);
    expect(many.kernelNames).toEqual(one.kernelNames);
    loaded.dispose();
  });

  it('writes metadata with sha256 and size of the three other files; verifyArtifact agrees', async () => {
    const dir = await saved('checksums');
    const meta = await readMetadata(dir);
    expect(Object.keys(meta.files).sort()).toEqual(['model.json', 'reference.json', 'weights.bin']);
    for (const [name, f] of Object.entries(meta.files)) {
      const data = await readFile(path.join(dir, name));
      expect(f).toEqual({ sha256: sha256(data), bytes: data.byteLength });
    }
    await expect(verifyArtifact(dir)).resolves.toEqual(meta);
    const hashes = await hashDirectory(dir);
    expect(Object.keys(hashes)).toEqual(['metadata.json', 'model.json', 'reference.json', 'weights.bin']);
    expect(hashes['weights.bin']).toEqual(meta.files['weights.bin']);
    const files = await artifactFiles(dir);
    expect(files.map((f) => f.name)).toEqual([
      'model.json',
      'weights.bin',
      'reference.json',
      'metadata.json',
    ]);
    expect(files.every((f) => path.isAbsolute(f.path) && f.bytes > 0)).toBe(true);
    const model = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8')) as {
      weightsManifest: { paths: string[] }[];
      modelTopology: unknown;
    };
    expect(model.weightsManifest[0]!.paths).toEqual(['weights.bin']);
    expect(model.modelTopology).toBeTruthy();
  });

  it('refuses a weights.bin with one byte flipped', async () => {
    const dir = await saved('corrupt');
    const file = path.join(dir, 'weights.bin');
    const data = await readFile(file);
    data[100] = (data[100] as number) ^ 0x01;
    await writeFile(file, data);
    await expect(loadArtifact(dir, tf)).rejects.toBeInstanceOf(ArtifactError);
    await expect(loadArtifact(dir, tf)).rejects.toThrow(/checksum mismatch for weights\.bin/);
    await expect(verifyArtifact(dir)).rejects.toThrow(/checksum mismatch for weights\.bin/);
  });

  it('refuses a truncated or missing file, naming it', async () => {
    const dir = await saved('truncated');
    const file = path.join(dir, 'reference.json');
    const data = await readFile(file);
    await writeFile(file, data.subarray(0, data.byteLength - 10));
    await expect(loadArtifact(dir, tf)).rejects.toThrow(
      /reference\.json is \d+ bytes, metadata\.json says \d+/,
    );
    await rm(path.join(dir, 'model.json'));
    await expect(verifyArtifact(dir)).rejects.toThrow(/model\.json is missing/);
    await expect(artifactFiles(dir)).rejects.toThrow(/model\.json is missing/);
  });

  it('refuses an artifact trained on a different feature list as incompatible, naming the difference', async () => {
    const dir = await saved('features');
    const metaFile = path.join(dir, 'metadata.json');
    const meta = JSON.parse(await readFile(metaFile, 'utf8')) as { features: string[] };
    meta.features = meta.features.map((f) => (f === 'vibrationHz' ? 'humidityPct' : f));
    await writeFile(metaFile, JSON.stringify(meta));
    const err = await loadArtifact(dir, tf).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArtifactError);
    expect((err as Error).message).toMatch(
      /incompatible: features .* \(missing vibrationHz; unknown humidityPct\)/,
    );
    await expect(verifyArtifact(dir)).rejects.toThrow(/incompatible/);
    // Integrity alone is still fine.
    await expect(verifyArtifact(dir, { compatibility: false })).resolves.toMatchObject({
      version: 'features',
    });
  });

  it('refuses other formats and class lists', async () => {
    const dir = await saved('format');
    const metaFile = path.join(dir, 'metadata.json');
    const meta = JSON.parse(await readFile(metaFile, 'utf8')) as Record<string, unknown>;
    await writeFile(metaFile, JSON.stringify({ ...meta, classes: ['Low', 'High'] }));
    await expect(loadArtifact(dir, tf)).rejects.toThrow(/classes \[Low, High\] differ .*missing Medium/);
    await writeFile(metaFile, JSON.stringify({ ...meta, format: 'driftline-model/2' }));
    await expect(loadArtifact(dir, tf)).rejects.toThrow(
      /format "driftline-model\/2", this worker reads driftline-model\/1/,
    );
    await writeFile(metaFile, '{ not json');
    await expect(loadArtifact(dir, tf)).rejects.toThrow(/metadata\.json is not valid JSON/);
  });

  it('saves atomically: a failure midway leaves neither the artifact nor a temporary directory', async () => {
    const parent = path.join(root, 'atomic');
    const dir = path.join(parent, 'model');
    const written: string[] = [];
    const save = saveArtifact(
      dir,
      trained,
      { version: 'x' },
      {
        onFileWritten: (file) => {
          written.push(file);
          if (file === 'weights.bin') throw new Error('disk full (injected)');
        },
      },
    );
    await expect(save).rejects.toBeInstanceOf(ArtifactError);
    await expect(save).rejects.toThrow(/disk full \(injected\)/);
    expect(written).toEqual(['model.json', 'weights.bin']);
    expect(await readdir(parent)).toEqual([]);
    // The same call without the failure succeeds.
    await saveArtifact(dir, trained, { version: 'x' });
    expect(await readdir(parent)).toEqual(['model']);
  });

  it('refuses to overwrite unless asked, and replaces in one rename when asked', async () => {
    const dir = await saved('overwrite');
    await expect(saveArtifact(dir, trained, { version: 'again' })).rejects.toThrow(/already exists/);
    expect((await readMetadata(dir)).version).toBe('overwrite');
    await saveArtifact(dir, trained, { version: 'again' }, { overwrite: true });
    expect((await readMetadata(dir)).version).toBe('again');
    expect(await readdir(path.dirname(dir))).toEqual(['model']);
  });

  it('copies an artifact, verified, to a new directory', async () => {
    const src = await saved('copy-src');
    const dest = path.join(root, 'copy-dest', 'v7');
    const meta = await copyArtifact(src, dest);
    expect(meta.version).toBe('copy-src');
    expect(await hashDirectory(dest)).toEqual(await hashDirectory(src));
    const loaded = await loadArtifact(dest, tf);
    expect(loaded.predict(rows.slice(0, 3))).toEqual(
      predictRows(tf, trained.model, trained.scaler, rows.slice(0, 3)),
    );
    loaded.dispose();
  });
});
