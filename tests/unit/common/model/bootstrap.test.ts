import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../../common/errors.ts';
import { loadArtifact } from '../../../../common/model/artifact.ts';
import { loadTf } from '../../../../common/model/tf.ts';
import { holdoutSeedFor, runBootstrapTraining } from '../../../../common/model/bootstrap.ts';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'driftline-train-cli-'));
});
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe('runBootstrapTraining', () => {
  it('holds out a stream with a different seed', () => {
    expect(holdoutSeedFor(11)).not.toBe(11);
    expect(holdoutSeedFor(2 ** 31 - 1)).not.toBe(2 ** 31 - 1);
  });

  it('trains from the first phase of a scenario and writes a loadable bootstrap artifact', async () => {
    const scenarioFile = path.join(root, 'two-phases.json');
    await writeFile(
      scenarioFile,
      JSON.stringify({
        seed: 5,
        machines: 2,
        profile: 'seed',
        phases: [
          { name: 'base', samples: 1500 },
          { name: 'shifted', samples: 1000, features: { temperatureC: { add: 30 } } },
        ],
      }),
    );
    const out = path.join(root, 'bootstrap');
    const r = await runBootstrapTraining({
      out,
      scenarioFile,
      samples: 5000,
      epochs: 2,
      seed: 3,
      holdout: 500,
      force: false,
    });
    // Only the first phase's 1,500 samples are used (80 % train, 20 % validation).
    expect(r.metadata.training.samples).toBe(1200);
    expect(r.metadata.validation.samples).toBe(300);
    expect(r.metadata.version).toBe('bootstrap');
    expect(r.metadata.training.source).toMatchObject({
      kind: 'bootstrap',
      scenarioFile,
      phase: 'base',
      samples: 1500,
    });
    expect(r.holdout.samples).toBe(500);
    expect(r.holdoutSeed).toBe(holdoutSeedFor(5));
    const { tf } = await loadTf();
    const loaded = await loadArtifact(out, tf);
    expect(loaded.metadata.version).toBe('bootstrap');
    loaded.dispose();
    await expect(
      runBootstrapTraining({
        out,
        scenarioFile,
        samples: 200,
        epochs: 1,
        seed: 3,
        holdout: 50,
        force: false,
      }),
    ).rejects.toThrow(/already exists/);
    await expect(
      runBootstrapTraining({
        out: path.join(root, 'x'),
        scenarioFile: path.join(root, 'missing.json'),
        samples: 200,
        epochs: 1,
        seed: 1,
        holdout: 10,
        force: false,
      }),
    ).rejects.toBeInstanceOf(ConfigError);
  });
});
