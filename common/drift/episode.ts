import { createHash } from 'node:crypto';
import { ValidationError } from '../errors.ts';
import {
  retrainRequestSchema,
  type DataWindow,
  type DriftKind,
  type RetrainRequest,
} from '../events/schemas.ts';
import type { DriftAlarm, SamplePoint } from './types.ts';

/**
 * Drift episodes: alarms in, at most one retrain request per episode out.
 *
 * The first alarm while no episode is open opens one and yields a
 * `retrain-request` whose `requestId` is the idempotency key
 * {@link retrainRequestId}(model name, champion version, episode start). While
 * the episode is open every further alarm (covariate or concept, any group)
 * only attaches to it and yields nothing: a drifted stream raises an alarm per
 * group every cooldown, and none of those may become another retraining.
 *
 * An episode closes when a new champion is loaded ({@link championLoaded}) or
 * when `episodeTtlSamples` samples have passed since it opened; an alarm after
 * that opens a new episode, so a retraining that never produced a champion
 * (rejected, failed, lost) is asked for again, once per TTL.
 */

export interface EpisodeConfig {
  /** Registered model name, e.g. `driftline-efficiency`. */
  readonly modelName: string;
  /** Champion version the alarms were raised against. */
  readonly championVersion: string;
  /** The champion's validation accuracy (artifact metadata), or null. */
  readonly validationAccuracy: number | null;
  /** Samples (worker sample clock) after which an open episode expires. */
  readonly episodeTtlSamples: number;
}

export const DEFAULT_EPISODE_TTL_SAMPLES = 100_000;

export interface EpisodeOptions {
  /** Wall clock for `requestedAt`; default Date.now. */
  now?: () => number;
  /** Live accuracy to put in a request whose alarm carried none (covariate alarms); default: the alarm's own. */
  liveAccuracy?: () => number | null;
  /** Correlation id of a new request; default `drift-` + the first 16 hex digits of the request id. */
  correlationId?: (requestId: string) => string;
}

/** The open episode, for logs and the dashboard. */
export interface EpisodeStatus {
  requestId: string;
  correlationId: string;
  kind: DriftKind;
  championVersion: string;
  /** Onset of the alarm that opened it. */
  start: SamplePoint;
  /** Sample clock when it opened (TTL counts from here). */
  openedAtSample: number;
  /** Alarms attached after the first (emitted nothing). */
  attachedAlarms: number;
  /** Kinds of all its alarms. */
  kinds: DriftKind[];
  /** Distinct groups that alarmed (first 32). */
  groups: string[];
}

export interface EpisodeStats {
  episodes: number;
  requests: number;
  attachedAlarms: number;
  expired: number;
  closedByChampion: number;
  /** Episodes closed because the champion was judged to handle the shift and the detector adopted it. */
  closedByReference: number;
}

const MAX_GROUPS_LISTED = 32;

/**
 * The idempotency key of a retrain request: sha256 (hex) of the model name, the
 * champion version and the episode start (sample clock and ts of the onset),
 * JSON-encoded as an array so no two different inputs share an encoding. The
 * same episode always yields the same key; the retrainer drops repeats.
 */
export function retrainRequestId(
  modelName: string,
  championVersion: string,
  episodeStart: SamplePoint,
): string {
  return createHash('sha256')
    .update(JSON.stringify([modelName, championVersion, episodeStart.sampleIndex, episodeStart.ts]))
    .digest('hex');
}

function checkName(name: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 128)
    throw new RangeError(`${name} must be a non-empty string of at most 128 characters, got ${String(v)}`);
  return v;
}

function checkAccuracy(v: unknown): number | null {
  if (v === null) return null;
  if (typeof v !== 'number' || !(v >= 0 && v <= 1))
    throw new RangeError(`validationAccuracy must be null or in [0, 1], got ${String(v)}`);
  return v;
}

export class DriftEpisodeManager {
  readonly modelName: string;
  readonly episodeTtlSamples: number;
  private champion: string;
  private validationAccuracy: number | null;
  private open: EpisodeStatus | null = null;
  /** The open episode's latest request (what a re-request repeats with more data). */
  private openRequest: RetrainRequest | null = null;
  private reRequests = 0;
  private readonly now: () => number;
  private readonly liveAccuracy: () => number | null;
  private readonly makeCorrelationId: (requestId: string) => string;
  private readonly counters: EpisodeStats = {
    episodes: 0,
    requests: 0,
    attachedAlarms: 0,
    expired: 0,
    closedByChampion: 0,
    closedByReference: 0,
  };

  constructor(
    config: Partial<EpisodeConfig> & Pick<EpisodeConfig, 'modelName' | 'championVersion'>,
    options: EpisodeOptions = {},
  ) {
    this.modelName = checkName('modelName', config.modelName);
    this.champion = checkName('championVersion', config.championVersion);
    this.validationAccuracy = checkAccuracy(config.validationAccuracy ?? null);
    const ttl = config.episodeTtlSamples ?? DEFAULT_EPISODE_TTL_SAMPLES;
    if (!Number.isInteger(ttl) || ttl < 1)
      throw new RangeError(`episodeTtlSamples must be a positive integer, got ${String(ttl)}`);
    this.episodeTtlSamples = ttl;
    this.now = options.now ?? Date.now;
    this.liveAccuracy = options.liveAccuracy ?? (() => null);
    this.makeCorrelationId = options.correlationId ?? ((id) => `drift-${id.slice(0, 16)}`);
  }

  get championVersion(): string {
    return this.champion;
  }

  get stats(): EpisodeStats {
    return { ...this.counters };
  }

  /** The open episode at `sampleIndex` (expired ones are closed first), or null. */
  episode(sampleIndex?: number): EpisodeStatus | null {
    if (sampleIndex !== undefined) this.expire(sampleIndex);
    return this.open ? { ...this.open, kinds: [...this.open.kinds], groups: [...this.open.groups] } : null;
  }

  /**
   * Handles one alarm at `sampleIndex` (worker sample clock; default the
   * alarm's own). Returns the retrain request to publish when it opens an
   * episode, or null when it attaches to the open one.
   */
  onAlarm(alarm: DriftAlarm, sampleIndex: number = alarm.at.sampleIndex): RetrainRequest | null {
    this.expire(sampleIndex);
    const open = this.open;
    if (open) {
      open.attachedAlarms++;
      this.counters.attachedAlarms++;
      if (!open.kinds.includes(alarm.kind)) open.kinds.push(alarm.kind);
      if (open.groups.length < MAX_GROUPS_LISTED && !open.groups.includes(alarm.groupKey))
        open.groups.push(alarm.groupKey);
      return null;
    }
    const requestId = retrainRequestId(this.modelName, this.champion, alarm.onset);
    const correlationId = this.makeCorrelationId(requestId);
    const request = this.buildRequest(alarm, requestId, correlationId);
    this.open = {
      requestId,
      correlationId,
      kind: alarm.kind,
      championVersion: this.champion,
      start: alarm.onset,
      openedAtSample: sampleIndex,
      attachedAlarms: 0,
      kinds: [alarm.kind],
      groups: [alarm.groupKey],
    };
    this.openRequest = request;
    this.reRequests = 0;
    this.counters.episodes++;
    this.counters.requests++;
    return request;
  }

  /**
   * The open episode's retrain produced no champion (its challenger lost): asks again, now, for a training
   * on at least `minSamples` samples of the same window (from the episode's start to `sampleIndex`), instead
   * of waiting for the TTL. The request id is derived from the episode's and the re-request's number, the
   * correlation id is the episode's. Returns null when no episode is open.
   */
  reRequest(sampleIndex: number, minSamples: number): RetrainRequest | null {
    this.expire(sampleIndex);
    const first = this.openRequest;
    if (!this.open || !first) return null;
    this.reRequests++;
    const requestId = createHash('sha256')
      .update(JSON.stringify([this.open.requestId, 'more-data', this.reRequests]))
      .digest('hex');
    const now = this.now();
    const candidate: RetrainRequest = {
      ...first,
      requestId,
      requestedAt: now,
      sampleIndex,
      window: {
        ...first.window,
        toTs: Math.max(first.window.toTs, now),
        sampleTo: Math.max(first.window.sampleTo ?? sampleIndex, sampleIndex),
      },
      liveAccuracy: this.liveAccuracy() ?? first.liveAccuracy,
      stage: 2,
      minSamples,
    };
    const request = this.validated(candidate);
    this.counters.requests++;
    return request;
  }

  /** Re-requests made in the open episode. */
  get reRequestCount(): number {
    return this.open ? this.reRequests : 0;
  }

  /** A new champion is serving: the open episode (if any) is over; later alarms are against `version`. */
  championLoaded(version: string, validationAccuracy: number | null = null): void {
    this.champion = checkName('championVersion', version);
    this.validationAccuracy = checkAccuracy(validationAccuracy);
    if (this.open) {
      this.open = null;
      this.openRequest = null;
      this.counters.closedByChampion++;
    }
  }

  /**
   * The open episode's question is answered without a new champion: its
   * challenger was rejected because the champion did not lose accuracy, and
   * the covariate detector adopts the shifted data as its reference. The
   * episode closes, so the next real change opens a new one (a new retrain
   * request). Returns whether an episode was open.
   */
  referenceAdopted(): boolean {
    if (!this.open) return false;
    this.open = null;
    this.openRequest = null;
    this.counters.closedByReference++;
    return true;
  }

  private expire(sampleIndex: number): void {
    if (this.open && sampleIndex - this.open.openedAtSample >= this.episodeTtlSamples) {
      this.open = null;
      this.openRequest = null;
      this.counters.expired++;
    }
  }

  private buildRequest(alarm: DriftAlarm, requestId: string, correlationId: string): RetrainRequest {
    const window: DataWindow = {
      fromTs: Math.min(alarm.onset.ts, alarm.at.ts),
      toTs: Math.max(alarm.onset.ts, alarm.at.ts),
      sampleFrom: Math.min(alarm.onset.sampleIndex, alarm.at.sampleIndex),
      sampleTo: Math.max(alarm.onset.sampleIndex, alarm.at.sampleIndex),
    };
    // Seqs are per machine: meaningful only when the evidence came from one machine's group.
    if (
      alarm.groupKey !== 'all' &&
      alarm.onset.seq !== undefined &&
      alarm.at.seq !== undefined &&
      alarm.onset.seq <= alarm.at.seq
    ) {
      window.fromSeq = alarm.onset.seq;
      window.toSeq = alarm.at.seq;
    }
    const candidate: RetrainRequest = {
      type: 'retrain-request',
      requestId,
      correlationId,
      modelName: this.modelName,
      championVersion: this.champion,
      kind: alarm.kind,
      requestedAt: this.now(),
      sampleIndex: alarm.at.sampleIndex,
      features: alarm.features.map((f) => ({ feature: f.feature, statistic: f.statistic, pvalue: f.pvalue })),
      window,
      liveAccuracy: alarm.liveAccuracy ?? this.liveAccuracy(),
      validationAccuracy: this.validationAccuracy,
      groupKey: alarm.groupKey,
    };
    return this.validated(candidate);
  }

  private validated(candidate: RetrainRequest): RetrainRequest {
    const checked = retrainRequestSchema.safeParse(candidate);
    if (!checked.success) {
      const issue = checked.error.issues[0];
      throw new ValidationError(
        'invalid_retrain_request',
        `retrain request does not match its schema: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
      );
    }
    return checked.data;
  }
}
