import { int, loadConfig, str } from '../../common/config/env.ts';
import { ConfigError, describeError } from '../../common/errors.ts';
import { createServiceLogger } from '../../common/logging/service-logger.ts';
import { runMain } from '../../common/main.ts';
import { createRegistry } from '../../common/registry/factory.ts';
import { sleep } from '../../common/util/sleep.ts';
import { VERSION } from '../../common/version.ts';
import { flushLogs } from './logs.ts';
import { ensureChampion } from '../../common/registry/bootstrap.ts';
import {
  createSigner,
  createTrust,
  ModelSignatureError,
  type ModelSigner,
} from '../../common/model/signature.ts';
import type { ModelRegistry } from '../../common/registry/types.ts';
import { signLegacyChampions } from '../../common/registry/sign-version.ts';
import type { Logger } from '../../common/logging/logger.ts';

/**
 * The cluster's first champion (a Kubernetes Job, k8s/base/bootstrap-champion-job.yaml): when the
 * registered model MODEL_NAME has no `champion` alias in MLflow (MLFLOW_TRACKING_URI), trains the
 * bootstrap model from scenarios/stationary.json exactly as `npm start` does for its embedded registry
 * (common/registry/bootstrap.ts: 40,000 samples, 30 epochs, seed 1), registers it and points `champion` at it.
 * The model is signed with MODEL_SIGNING_KEY (the retrainer's key: edge workers refuse unsigned models).
 * With a champion signed by that key in place it exits at once: it never replaces a model the retrainer
 * promoted (the retrainer signs with the same key). Upgrade to registry-version signatures: champions
 * promoted before versions were signed (metadata signed by this key, no version signature) are signed for
 * their version first (common/registry/sign-version.ts), so the edge workers keep accepting them and
 * rollbacks to them; a champion that is an older artifact registered again is not, and is replaced by the
 * bootstrap model. Waits for
 * MLflow (BOOTSTRAP_WAIT_S, default 300 s) first.
 *
 *   node --import tsx jobs/src/bootstrap-champion.ts
 */
const spec = {
  trackingUri: str('MLFLOW_TRACKING_URI', {
    description: 'MLflow tracking server whose registry gets the first champion',
    default: '',
  }),
  modelName: str('MODEL_NAME', { description: 'Registered model', default: 'driftline-efficiency' }),
  workDir: str('BOOTSTRAP_DIR', {
    description: 'Where the bootstrap artifact is written before it is uploaded',
    default: '.driftline/bootstrap/driftline-efficiency',
  }),
  signingKey: str('MODEL_SIGNING_KEY', {
    description: "Ed25519 private key signing the bootstrap model (the retrainer's, from the vault)",
    default: '',
    secret: true,
  }),
  waitSeconds: int('BOOTSTRAP_WAIT_S', {
    description: 'How long the bootstrap job waits for MLflow, seconds',
    default: 300,
    min: 1,
    max: 3600,
  }),
};

/**
 * Whether the champion `version` carries valid signatures by `signer`'s key — of its metadata and, once the
 * champions promoted before versions were signed have been signed (the upgrade, `signLegacyChampions`), of
 * its registry version. An older artifact registered again under a new number gets no version signature.
 */
async function signedBy(
  signer: ModelSigner,
  registry: ModelRegistry,
  modelName: string,
  version: string,
  logger: Logger,
): Promise<boolean> {
  const trust = createTrust([signer.publicKey]);
  try {
    await trust.verifyArtifact(await registry.fetchArtifact(modelName, version));
    await signLegacyChampions(registry, signer, modelName, logger);
    const v = await registry.getVersion(modelName, version);
    trust.verifyVersion({ name: modelName, version, checksum: v?.checksum ?? '' }, v?.versionSignature);
    return true;
  } catch (err) {
    if (err instanceof ModelSignatureError) return false;
    throw err;
  }
}

runMain(async () => {
  const config = loadConfig(spec);
  if (config.trackingUri.trim() === '')
    throw new ConfigError(
      'Invalid configuration: MLFLOW_TRACKING_URI is required (the registry to bootstrap)',
    );
  if (config.signingKey.trim() === '')
    throw new ConfigError(
      'Invalid configuration: MODEL_SIGNING_KEY is required (edge workers refuse an unsigned champion)',
    );
  const signer = createSigner(config.signingKey.trim());
  const logger = createServiceLogger({ service: 'bootstrap-champion', version: VERSION });
  const registry = createRegistry({ mlflowTrackingUri: config.trackingUri, logger });
  const deadline = Date.now() + config.waitSeconds * 1000;
  for (let attempt = 1; ; attempt++) {
    try {
      const existing = await registry.getChampion(config.modelName);
      if (existing && (await signedBy(signer, registry, config.modelName, existing.version, logger))) {
        logger.info(
          `${config.modelName} already has a signed champion (v${existing.version}): nothing to do`,
          {
            action: 'bootstrap-skipped',
            modelVersion: existing.version,
          },
        );
        await flushLogs(logger);
        return;
      }
      break;
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`MLflow did not answer within ${config.waitSeconds} s: ${describeError(err)}`);
      logger.info('waiting for MLflow', { attempt, err: describeError(err) });
      await sleep(3000);
    }
  }
  const champion = await ensureChampion(registry, config.modelName, config.workDir, logger, signer, {
    // A champion this deployment's key did not sign (one from before models were signed) is one the edge
    // workers refuse: the signed bootstrap model replaces it, logged with the reason.
    replaceUnsigned: true,
  });
  logger.info(`${config.modelName} v${champion.version} is the champion`, {
    action: 'bootstrap-champion',
    modelVersion: champion.version,
  });
  await flushLogs(logger);
});
