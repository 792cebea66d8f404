/**
 * `npm run evaluate -- --scenario-file F [--json] [--retrain]`
 *
 * Replays a scenario through the classifier and drift detector on the sample
 * clock (no broker; fast and exact) and prints one JSON object (`--json`) or a
 * readable report. With `--retrain` it closes the loop (retrain, gate,
 * promote, swap) and adds `retrains`, `samplesToHeal` and accuracy per phase
 * with and without retraining.
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '../common/errors.ts';
import { loadConfig } from '../common/config/env.ts';
import { createLogger } from '../common/logging/logger.ts';
import { runMain } from '../common/main.ts';
import { loadTf } from '../common/model/tf.ts';
import { VERSION } from '../common/version.ts';
import { accuracyConfigOf, driftConfigOf, edgeConfigSpec } from '../edge-inference/src/config.ts';
import { loadScenarioFile } from '../common/scenario/scenario.ts';
import { DEFAULT_BOOTSTRAP_DIR, ensureBootstrapArtifact } from '../common/registry/bootstrap.ts';
import { DEFAULT_RETRAIN_LATENCY_SAMPLES, replayScenario, type ReplayResult } from './lib/replay.ts';

const USAGE = `usage: npm run evaluate -- --scenario-file F [--json] [--retrain] [--label-delay-samples N] [--retrain-latency-samples N] [--retrain-min-samples N] [--retrain-epochs N] [--retry-every-samples N] [--stage1-min-samples N] [--concept-rerequests N] [--no-concept-cusum] [--model-dir DIR]`;

function intArg(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw))
    throw new ConfigError(`--${name}=${JSON.stringify(raw)} is invalid: expected a non-negative integer`);
  return Number(raw);
}

runMain(async () => {
  const { values } = parseArgs({
    options: {
      'scenario-file': { type: 'string' },
      json: { type: 'boolean', default: false },
      retrain: { type: 'boolean', default: false },
      'label-delay-samples': { type: 'string' },
      'retrain-latency-samples': { type: 'string' },
      // Healing levers (docs/drift-detector-design.md, "Healing"): retrain on fewer post-drift labels, shorter training.
      'retrain-min-samples': { type: 'string' },
      'retrain-epochs': { type: 'string' },
      'retry-every-samples': { type: 'string' },
      // Two-stage concept retraining (RETRAIN_STAGE1_MIN_SAMPLES; 0: one stage) and re-requests (CONCEPT_REREQUEST_MAX).
      'stage1-min-samples': { type: 'string' },
      'concept-rerequests': { type: 'string' },
      // The sequential label test is on by default, as on the edge (ACCURACY_CUSUM); --concept-cusum is kept as a no-op.
      'concept-cusum': { type: 'boolean', default: false },
      'no-concept-cusum': { type: 'boolean', default: false },
      'model-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const file = values['scenario-file'];
  if (!file) throw new ConfigError(`--scenario-file is required\n${USAGE}`);
  const labelDelaySamples = intArg('label-delay-samples', values['label-delay-samples'], 100);
  // Training + promotion + the edge's model load, as the live system measures them (stage 1 at 500 msg/s:
  // 1.57 + 0.49 + 0.38 s = 2.44 s at load ~5; docs/drift-detector-design.md, section 6): 1,250 samples = 2.5 s.
  const retrainLatencySamples = intArg(
    'retrain-latency-samples',
    values['retrain-latency-samples'],
    DEFAULT_RETRAIN_LATENCY_SAMPLES,
  );
  // 125 samples = RETRAIN_DATA_RETRY_MS (250 ms) at 500 msg/s.
  const retryEverySamples = intArg('retry-every-samples', values['retry-every-samples'], 125);
  const retrainerConfig = {
    ...(values['retrain-min-samples'] !== undefined
      ? { minSamples: intArg('retrain-min-samples', values['retrain-min-samples'], 2_000) }
      : {}),
    ...(values['retrain-epochs'] !== undefined
      ? { epochs: intArg('retrain-epochs', values['retrain-epochs'], 40) }
      : {}),
    ...(values['stage1-min-samples'] !== undefined
      ? { stage1MinSamples: intArg('stage1-min-samples', values['stage1-min-samples'], 600) }
      : {}),
  };
  // Drift and accuracy settings come from the same env vars as the edge worker's.
  const edge = loadConfig(edgeConfigSpec);
  const logger = createLogger({ service: 'evaluate', version: VERSION, stream: process.stderr });
  let scenario;
  try {
    scenario = await loadScenarioFile(file);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const { tf, backend } = await loadTf(logger);
  const championDir = await ensureBootstrapArtifact(values['model-dir'] ?? DEFAULT_BOOTSTRAP_DIR, logger);
  const common = {
    scenario,
    championDir,
    tf,
    labelDelaySamples,
    retrainLatencySamples,
    retryEverySamples,
    retrainerConfig,
    conceptCusum:
      values['no-concept-cusum'] || (edge.accuracyCusum === 'off' && !values['concept-cusum'])
        ? (false as const)
        : {},
    conceptReRequests: intArg('concept-rerequests', values['concept-rerequests'], edge.conceptReRequests),
    driftConfig: driftConfigOf(edge),
    accuracyConfig: accuracyConfigOf(edge),
    modelName: edge.modelName,
    logger,
    onProgress: (n: number) => logger.debug(`replayed ${n} samples`),
  };
  logger.info('replaying without retraining', { scenario: file, backend });
  const base = await replayScenario({ ...common, retrain: false });
  let loop: ReplayResult | undefined;
  if (values.retrain) {
    logger.info('replaying with the closed loop (retrain, gate, promote, swap)', { scenario: file });
    loop = await replayScenario({ ...common, retrain: true });
  }
  const main = loop ?? base;
  const out: Record<string, unknown> = {
    scenario: file,
    backend,
    samples: main.samples,
    phases: main.phases.map(({ name, start, end }) => ({ name, start, end })),
    alarms: main.alarms,
    detectionDelay: main.detectionDelay,
    falseAlarms: main.falseAlarms,
    retrainRequests: main.alarms.filter((a) => a.requestId !== undefined).length,
    accuracy: main.accuracy,
    dataQuality: main.dataQuality,
    settings: {
      labelDelaySamples,
      retrainLatencySamples,
      retryEverySamples,
      retrainer: retrainerConfig,
      conceptCusum: common.conceptCusum !== false,
      conceptReRequests: common.conceptReRequests,
      drift: common.driftConfig,
      accuracy: common.accuracyConfig,
    },
  };
  if (loop) {
    out.retrains = loop.retrains;
    out.championVersions = loop.championVersions;
    out.preDriftAccuracy = loop.preDriftAccuracy;
    out.samplesToHeal = Object.fromEntries(
      loop.healing.filter((h) => h.changesAnything).map((h) => [h.name, h.samplesToHeal]),
    );
    out.samplesToHealWithoutRetraining = Object.fromEntries(
      base.healing.filter((h) => h.changesAnything).map((h) => [h.name, h.samplesToHeal]),
    );
    out.accuracyPerPhase = Object.fromEntries(
      loop.healing.map((h, i) => [
        h.name,
        {
          withRetraining: h.accuracy,
          withoutRetraining: base.healing[i]?.accuracy ?? null,
          minRollingWithRetraining: h.minRollingAccuracy,
        },
      ]),
    );
    out.falseAlarmsWithoutRetraining = base.falseAlarms;
    out.shiftsAccepted = loop.shiftsAccepted;
    out.referenceUpdates = loop.referenceUpdates;
    out.settleChecks = loop.settleChecks;
    // Per phase: covariate alarms after the first accepted shift in it (goal 0 while the shift lasts).
    out.alarmsAfterShiftAccepted = Object.fromEntries(
      loop.phases
        .filter((p) => loop.shiftsAccepted.some((a) => a.at >= p.start && a.at < p.end))
        .map((p) => {
          const first = loop.shiftsAccepted.find((a) => a.at >= p.start && a.at < p.end)?.at ?? p.start;
          return [p.name, loop.alarms.filter((a) => a.at > first && a.at < p.end).length];
        }),
    );
  }
  out.elapsedMs = base.elapsedMs + (loop?.elapsedMs ?? 0);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return;
  }
  const lines = [
    `${file}: ${main.samples} samples, ${main.alarms.length} alarm(s), ${main.falseAlarms} ` +
      `false alarm(s), accuracy ${main.accuracy.overall?.toFixed(4) ?? 'n/a'}`,
  ];
  for (const p of main.phases) {
    const h = main.healing.find((x) => x.name === p.name);
    lines.push(
      `  ${p.name.padEnd(20)} [${p.start}, ${p.end})  accuracy ${h?.accuracy?.toFixed(4) ?? 'n/a'}${p.changesAnything ? `  detection delay ${main.detectionDelay[p.name] ?? 'none'}${loop ? `  samples to heal ${h?.samplesToHeal ?? 'not healed'}` : ''}` : ''}`,
    );
  }
  for (const r of loop?.retrains ?? []) {
    lines.push(
      `  retrain at ${r.requestedAt} (${r.kind}${r.stage !== undefined ? `, stage ${r.stage}` : ''}, ${r.minSamples} samples): ` +
        `${r.promoted ? `promoted v${r.version}` : 'not promoted'} — ${r.reason}`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
});
