import type { ClassProbabilities, LoadedModel } from '../../common/model/types.ts';
import type { Prediction, Telemetry } from '../../common/schema/telemetry.ts';

/**
 * The pure core of inference, shared by the stream, the HTTP endpoint and
 * anything else (an offline evaluator) that holds a {@link LoadedModel}.
 */

/** The prediction message for one telemetry record. Latency is clamped at 0 when the device clock runs ahead. */
export function toPrediction(
  t: Telemetry,
  result: ClassProbabilities,
  modelVersion: string,
  predictedAt: number,
): Prediction {
  return {
    machineId: t.machineId,
    seq: t.seq,
    ts: t.ts,
    predictedAt,
    efficiency: result.efficiency,
    probabilities: {
      Low: clamp01(result.probabilities.Low),
      Medium: clamp01(result.probabilities.Medium),
      High: clamp01(result.probabilities.High),
    },
    modelVersion,
    latencyMs: Math.max(0, predictedAt - t.ts),
  };
}

/**
 * Predicts a batch of telemetry with one `predict` call and returns the
 * prediction messages, in order. `version` is reported with each prediction
 * (the registry's version number; default the artifact's own).
 */
export function predictTelemetry(
  model: LoadedModel,
  batch: readonly Telemetry[],
  version: string = model.metadata.version,
  predictedAt?: number,
): Prediction[] {
  const results = model.predict(batch);
  if (results.length !== batch.length)
    throw new Error(`model ${version} returned ${results.length} predictions for ${batch.length} rows`);
  predictedAt ??= Date.now();
  const at = predictedAt;
  return batch.map((t, i) => toPrediction(t, results[i] as ClassProbabilities, version, at));
}

/** float32 softmax outputs can land a hair outside [0, 1]; the prediction schema is strict. */
function clamp01(p: number): number {
  return Number.isFinite(p) ? Math.min(1, Math.max(0, p)) : 0;
}
