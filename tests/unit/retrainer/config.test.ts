import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../common/config/env.ts';
import { ConfigError } from '../../../common/errors.ts';
import {
  defaultRetrainerConfig,
  resolveRetrainerConfig,
  retrainerConfigSpec,
} from '../../../retrainer/src/config.ts';

describe('retrainer config', () => {
  it('has the documented defaults', () => {
    expect(defaultRetrainerConfig()).toMatchObject({
      modelName: 'driftline-efficiency',
      registryDir: '.driftline/registry',
      samplesDir: '.driftline/samples',
      stateDir: '.driftline/retrainer',
      minSamples: 2000,
      oldDataShare: 0.2,
      oldDataShareConcept: 0,
      conceptReplay: 1,
      conceptRecentWeight: 2,
      stage1MinSamples: 600,
      stage1Epochs: 20,
      stage1BatchSize: 128,
      stage1LearningRate: 0.01,
      epochs: 40,
      batchSize: 64,
      warmLearningRate: 0.003,
      prewarmWorker: true,
      timeoutMs: 120_000,
      minGain: 0.005,
      minAccuracy: 0.9,
      httpPort: 9103,
      kafkaBrokers: [],
      mlflowTrackingUri: undefined,
    });
  });

  it('reads the environment and reports every invalid variable in one error', () => {
    const c = loadConfig(retrainerConfigSpec, {
      RETRAIN_TIMEOUT_MS: '5000',
      PROMOTION_MIN_GAIN: '0.01',
      KAFKA_BROKERS: 'a:9092,b:9092',
      RETRAIN_CLASS_WEIGHT: 'balanced',
    });
    expect(c).toMatchObject({
      timeoutMs: 5000,
      minGain: 0.01,
      kafkaBrokers: ['a:9092', 'b:9092'],
      classWeight: 'balanced',
    });
    let err: unknown;
    try {
      loadConfig(retrainerConfigSpec, {
        RETRAIN_OLD_DATA_SHARE: '1.5',
        RETRAINER_HTTP_PORT: 'http',
        MODEL_NAME: '../x',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).toContain('RETRAIN_OLD_DATA_SHARE="1.5" is invalid');
    expect(message).toContain('RETRAINER_HTTP_PORT="http" is invalid');
    expect(message).toContain('MODEL_NAME="../x" is invalid');
  });

  it('fills a partial programmatic config with the defaults', () => {
    const c = resolveRetrainerConfig({ minSamples: 100, epochs: undefined });
    expect(c.minSamples).toBe(100);
    expect(c.epochs).toBe(40);
  });

  it('documents every field', () => {
    for (const f of Object.values(retrainerConfigSpec)) expect(f.description.length).toBeGreaterThan(10);
  });
});
