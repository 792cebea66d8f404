import type { Efficiency } from '../../common/schema/features.ts';

/** What the retrain trigger (`retrain-trigger.ts`) tells its observers, and what it is fed. */

/** What a reference update answered: the rejected challenger's request, for observers. */
export interface ReferenceUpdateOutcome {
  modelVersion: string;
  /** The correlation id of the covariate request whose challenger was rejected. */
  correlationId: string;
  requestId: string | null;
  /** The champion's accuracy on the retrainer's recent holdout, when the rejection carried it. */
  championAccuracy: number | null;
}

/** How an alarm was handled, for observers (the status publisher). */
export interface AlarmOutcome {
  /** The model serving when the alarm was raised. */
  modelVersion: string;
  /**
   * The request's correlation id when the alarm opened an episode, the open episode's when it joined one,
   * else the alarm's own.
   */
  correlationId: string;
  /** The retrain request the alarm opened, if any. */
  requestId?: string;
  /** Live accuracy at the alarm (the alarm's, else the monitor's). */
  liveAccuracy: number | null | undefined;
}

/** A labelled prediction: what the accuracy monitor is fed. */
export interface LabelledOutcome {
  predicted: Efficiency;
  label: Efficiency;
  /** Model that made the prediction; only the serving model's predictions count. */
  modelVersion: string;
  ts: number;
  sampleIndex: number;
}
