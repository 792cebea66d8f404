import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../logging/logger.ts';
import { ArtifactError, describeError, isRetriable } from '../errors.ts';
import { verifyArtifact } from '../model/artifact.ts';
import { createTrust, type ModelSigner } from '../model/signature.ts';
import { DEFAULT_MODEL_NAME } from '../model/types.ts';
import { signLegacyChampions, signRegisteredVersion } from './sign-version.ts';
import type { ModelRegistry, ModelVersion } from './types.ts';
import { DEFAULT_SCENARIO_FILE, runBootstrapTraining } from '../model/bootstrap.ts';

/**
 * The first champion of a registry: trained from the stationary scenario when the registry has none,
 * registered and promoted. Used by the all-in-one runner (`npm start`, its directory registry), the
 * offline evaluator and the cluster's bootstrap-champion Job (jobs/src/bootstrap-champion.ts, MLflow).
 */

/** Where the bootstrap champion's artifact is cached between runs. */
export const DEFAULT_BOOTSTRAP_DIR = `.driftline/bootstrap/${DEFAULT_MODEL_NAME}`;

/**
 * The first champion's artifact, trained from the stationary scenario the
 * first time (about 10–40 s on WASM) and reused afterwards. A cached artifact
 * that fails its checksums is retrained.
 */
export async function ensureBootstrapArtifact(dir: string, logger: Logger): Promise<string> {
  const out = path.resolve(dir);
  if (existsSync(out)) {
    try {
      await verifyArtifact(out);
      return out;
    } catch (err) {
      logger.warn('cached bootstrap model is invalid; training a new one', { dir: out, err });
    }
  }
  logger.info('no champion yet: training the bootstrap model from the stationary scenario', {
    action: 'bootstrap-training',
    dir: out,
  });
  const r = await runBootstrapTraining(
    {
      out,
      scenarioFile: DEFAULT_SCENARIO_FILE,
      samples: 40_000,
      epochs: 30,
      seed: 1,
      holdout: 20_000,
      force: true,
    },
    logger,
  );
  logger.info(
    `bootstrap model trained: held-out accuracy ${r.holdout.accuracy.toFixed(4)}, macro-F1 ` +
      `${r.holdout.macroF1.toFixed(4)} (${(r.trainMs / 1000).toFixed(1)} s on ${r.backend})`,
    {
      action: 'bootstrap-trained',
      accuracy: r.holdout.accuracy,
      macroF1: r.holdout.macroF1,
    },
  );
  return out;
}

/**
 * Registers and promotes the bootstrap artifact when the registry has no champion; returns the champion.
 *
 * With `signer`, the bootstrap artifact is signed with it (edge workers refuse unsigned models), and in a
 * directory registry (local state of `npm start`) a champion this key did not sign — state left by an older
 * version, or by another key — is replaced by the signed bootstrap, so the edge has a model it accepts. An
 * MLflow registry is changed that way only with `replaceUnsigned` (the cluster's bootstrap-champion Job: the
 * deployment holds the signing key, and a champion it did not sign is one its edge workers refuse — e.g. a
 * deployment upgraded from before models were signed); otherwise the edge refuses such a champion and says why.
 *
 * Version signatures: the bootstrap champion is signed for its registry version before the alias moves; and
 * a registry whose champions were promoted before versions were signed is upgraded here
 * ({@link signLegacyChampions}: every version that was champion, carries this key's metadata signature
 * and is the first with its checksum gets its version signature) — so the cluster's bootstrap-champion Job
 * and `npm start` upgrade a deployment in place, and rollbacks to those champions keep working.
 */
export async function ensureChampion(
  registry: ModelRegistry,
  modelName: string,
  bootstrapDir: string,
  logger: Logger,
  signer?: ModelSigner,
  options: { replaceUnsigned?: boolean } = {},
): Promise<ModelVersion> {
  const replaceUnsigned = options.replaceUnsigned ?? registry.kind.startsWith('directory');
  const existing = await registry.getChampion(modelName);
  let replacing: string | undefined;
  if (existing && signer) {
    try {
      await createTrust([signer.publicKey]).verifyArtifact(
        await registry.fetchArtifact(modelName, existing.version),
      );
      // The upgrade to version signatures: champions promoted before them are signed for their version
      // (the edge refuses a version without one); an older artifact registered again is not.
      const { refused } = await signLegacyChampions(registry, signer, modelName, logger);
      if (refused.includes(existing.version))
        throw new ArtifactError('it is an older artifact registered again under a new version number');
    } catch (err) {
      if (isRetriable(err)) throw err; // the registry is unreachable for now: nothing is decided
      if (!replaceUnsigned) {
        logger.error(
          `champion ${modelName}@${existing.version} does not carry a signature by key ${signer.keyId} ` +
            `(${describeError(err)}): edge workers trusting only this key will refuse it`,
        );
        return existing;
      }
      replacing = `champion v${existing.version} is not signed by key ${signer.keyId} (${describeError(err)})`;
      logger.warn(`${replacing}: promoting the signed bootstrap model instead`, {
        action: 'bootstrap-resign',
        modelVersion: existing.version,
      });
    }
  }
  if (existing && replacing === undefined) return existing;
  const dir = await ensureBootstrapArtifact(bootstrapDir, logger);
  if (signer) {
    const meta = await verifyArtifact(dir);
    try {
      createTrust([signer.publicKey]).verifyMetadata(meta);
    } catch {
      await signer.signArtifact(dir);
      logger.info(`bootstrap model signed with key ${signer.keyId}`, { action: 'artifact-signed' });
    }
  }
  const meta = await verifyArtifact(dir);
  const version = await registry.registerVersion(modelName, dir, {
    correlationId: 'bootstrap',
    metrics: {
      accuracy: meta.validation.accuracy,
      macroF1: meta.validation.macroF1,
      samples: meta.validation.samples,
      logLoss: meta.validation.logLoss,
    },
    tags: { source: 'bootstrap' },
    source: 'bootstrap',
  });
  // Signed for its version before the alias moves: the edge refuses a version without that signature.
  if (signer) await signRegisteredVersion(registry, signer, version, dir);
  await registry.setChampion(modelName, version.version, {
    by: 'bootstrap',
    reason: replacing ?? 'first champion, trained from the stationary scenario',
    correlationId: 'bootstrap',
  });
  logger.info(`bootstrap model registered as ${modelName} v${version.version} and promoted to champion`, {
    action: 'model-promoted',
    modelVersion: version.version,
    correlationId: 'bootstrap',
  });
  return (await registry.getChampion(modelName)) ?? version;
}
