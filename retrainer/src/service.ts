import { BUS_TOPICS, type BusMessage, type EventBus, type Subscription } from '../../common/bus/types.ts';
import { parseRetrainRequest, type ModelEvent, type RetrainRequest } from '../../common/events/schemas.ts';
import { ValidationError, describeError, isRetriable } from '../../common/errors.ts';
import { silentLogger } from '../../common/logging/logger.ts';
import { startSampleBusSink, type SampleBusSink } from '../../common/samples/bus-sink.ts';
import { retry } from '../../common/util/retry.ts';
import { sleep } from '../../common/util/sleep.ts';
import { resolveRetrainerConfig, type RetrainerConfig } from './config.ts';
import { NotEnoughDataError } from './dataset.ts';
import { RequestLedger, isFinal, type RequestRecord, type RequestStatus } from './ledger.ts';
import { RetrainerMetrics } from './metrics.ts';
import { failureEvent, modelEventFor } from './model-events.ts';
import { defaultTrainer, retrainOnce, type RetrainOnceDeps, type RetrainOutcome } from './pipeline.ts';
import { planStage, type StagePlan } from './stages.ts';

/**
 * The retrainer service: consumes retrain requests from the event bus
 * (consumer group `retrainer`) and runs {@link retrainOnce} for each, one at a
 * time per model name, publishing `model-promoted` / `model-rejected` on
 * `driftline.model-events` (key = model name).
 *
 * - Validation: a malformed request, or one for another model than the
 *   configured `MODEL_NAME`, is rejected with a non-retriable
 *   `ValidationError`, so the bus dead-letters it.
 * - Bounded: at most `maxQueued` requests wait behind the running one (more
 *   are coalesced into the newest waiting, which reads the newest data
 *   anyway); the ledger keeps `ledgerMaxFinished` finished records.
 * - Idempotency: requests are keyed by `requestId`. Each is recorded durably
 *   (`<stateDir>/requests.json`) as `queued` *before* the message is
 *   acknowledged, and with its outcome when done. A redelivery or repeat of a
 *   known id is acknowledged and ignored — also after a restart. Requests that
 *   were queued or running when the process stopped are resumed on start.
 * - Serialisation: one queue per model name; trainings of one model never
 *   overlap (different models run side by side).
 * - Coalescing: a request for a model whose queue already holds a request of
 *   the same drift episode — same model and same champion version, i.e. drift
 *   detected against the same champion, whichever detector group raised it —
 *   is acknowledged and recorded as `coalesced` into that one: its training
 *   reads the newest data anyway.
 * - Not enough data: the request waits `dataRetryMs` and tries again, reading
 *   everything since the window's start, up to `dataMaxAttempts` attempts; then
 *   it ends as `insufficient-data` (reported as `model-rejected`). Retriable
 *   infrastructure errors (store, registry lock, the MLflow registry
 *   unreachable while the champion is scored or promoted — the old champion
 *   keeps serving) are retried the same way, within the same attempt budget,
 *   with an exponential backoff from `dataRetryMs` (capped at
 *   {@link MAX_INFRA_RETRY_DELAY_MS} or `dataRetryMs`, whichever is larger).
 * - Two-stage concept retraining (`stages.ts`): a concept request first trains
 *   on `stage1MinSamples` samples; once it has ended (promoted or rejected) a
 *   stage-2 follow-up (same correlation id, request id `followUpRequestId`) is
 *   recorded and queued at the front of the lane and trains on `minSamples`
 *   against whoever is champion then. The stage-1 event names the follow-up.
 * - Shutdown (`close`): stops consuming, wakes waiting requests (they stay
 *   queued for the next start), lets a running training finish or time out.
 */

/** Longest wait between retries of a request that failed on a retriable infrastructure error, ms. */
export const MAX_INFRA_RETRY_DELAY_MS = 60_000;

/** The wait before retrying after the `failures`-th consecutive retriable infrastructure error (1-based). */
export function infraRetryDelayMs(baseMs: number, failures: number): number {
  const cap = Math.max(baseMs, MAX_INFRA_RETRY_DELAY_MS);
  return Math.min(cap, baseMs * 2 ** Math.min(Math.max(failures - 1, 0), 20));
}

/** Consumer group of retrain requests. */
export const RETRAINER_GROUP = 'retrainer';

/** What {@link createRetrainer} needs. */
export interface RetrainerDeps extends RetrainOnceDeps {
  /** Bus to consume retrain requests (and labelled samples) from and publish model events to. */
  bus: EventBus;
  /** Metrics to update; default a fresh set on its own prom-client registry. */
  metrics?: RetrainerMetrics;
  /** Also run the labelled-sample sink (`driftline.labelled-samples` → `store`). Default true. */
  consumeSamples?: boolean;
  /** Clock of the `at` field of published events. Default `Date.now`. */
  now?: () => number;
}

/** A model's queue as shown by {@link Retrainer.status}. */
export interface LaneStatus {
  /** Request being trained (or waiting for data), if any. */
  current?: { requestId: string; correlationId: string; status: RequestStatus; attempts: number };
  /** Requests queued behind it. */
  queued: number;
}

/** What `/healthz` and `/readyz` report. */
export interface RetrainerStatus {
  /** `start()` completed. */
  started: boolean;
  /** `close()` was called. */
  closing: boolean;
  /** Kind of trainer (`worker`, `in-thread`…). */
  trainer: string;
  /** Per-model queues. */
  lanes: Record<string, LaneStatus>;
  /** Outcomes recorded in the ledger, by status. */
  handled: Record<string, number>;
  /** The last finished retrain. */
  last?: { requestId: string; status: string; reason: string; version?: string; at: string };
}

/** A running retrainer. */
export interface Retrainer {
  /** The retrainer's Prometheus metrics. */
  readonly metrics: RetrainerMetrics;
  /** Opens the ledger, resumes unfinished requests, subscribes (and starts the sample sink). */
  start(): Promise<void>;
  /** Handles one retrain-request message value as the bus handler does (validation, idempotency, queueing). */
  submit(value: unknown): Promise<'accepted' | 'duplicate' | 'coalesced'>;
  /** Resolves when every queue is empty and no training runs (tests, the all-in-one process). */
  idle(): Promise<void>;
  /** Queues, counts and the last outcome, for `/healthz`. */
  status(): RetrainerStatus;
  /** The ledger record of a request (tests, debugging). */
  record(requestId: string): RequestRecord | undefined;
  /** Graceful stop; see the module comment. Does not close the bus, the store or the registry. */
  close(): Promise<void>;
}

interface Job {
  request: RetrainRequest;
  attempts: number;
}

interface Lane {
  queue: Job[];
  current?: Job;
  status?: RequestStatus;
  running?: Promise<void>;
}

/** Creates the retrainer service; call `start()` to begin consuming. */
export function createRetrainer(deps: RetrainerDeps): Retrainer {
  const config: RetrainerConfig = resolveRetrainerConfig(deps.config);
  const logger = deps.logger ?? silentLogger();
  const metrics = deps.metrics ?? new RetrainerMetrics();
  const now = deps.now ?? Date.now;
  // The service's own trainer keeps a worker started ahead of the next training (RETRAIN_PREWARM_WORKER).
  const trainer = deps.trainer ?? defaultTrainer(config, deps.tf, { prewarm: config.prewarmWorker });
  const ownsTrainer = deps.trainer === undefined;
  const onceDeps: RetrainOnceDeps = { ...deps, config, logger, trainer, metrics };
  const lanes = new Map<string, Lane>();
  const stopping = new AbortController();
  let ledger: RequestLedger | undefined;
  let subscription: Subscription | undefined;
  let sink: SampleBusSink | undefined;
  let started = false;
  let closing = false;
  let last: RetrainerStatus['last'];

  const lane = (name: string): Lane => {
    let l = lanes.get(name);
    if (!l) {
      l = { queue: [] };
      lanes.set(name, l);
    }
    return l;
  };
  const updateQueueGauge = (): void =>
    metrics.queueDepth.set([...lanes.values()].reduce((n, l) => n + l.queue.length, 0));
  const requireLedger = (): RequestLedger => {
    if (!ledger) throw new Error('retrainer not started');
    return ledger;
  };

  async function publish(event: ModelEvent): Promise<void> {
    try {
      await retry(() => deps.bus.publish(BUS_TOPICS.modelEvents, event.modelName, event), {
        attempts: 5,
        initialDelayMs: 200,
        signal: stopping.signal,
      });
    } catch (err) {
      // The registry holds the truth (the edge also watches the champion alias); the event is a notification.
      logger.error('could not publish model event', {
        correlationId: event.correlationId,
        type: event.type,
        err: describeError(err),
      });
    }
  }

  async function finishRecord(
    job: Job,
    status: RequestStatus,
    reason: string,
    version?: string,
  ): Promise<void> {
    const r = job.request;
    await requireLedger().update(r.requestId, {
      status,
      reason,
      attempts: job.attempts,
      ...(version ? { version } : {}),
    });
    last = {
      requestId: r.requestId,
      status,
      reason,
      ...(version ? { version } : {}),
      at: new Date().toISOString(),
    };
  }

  async function runJob(l: Lane, job: Job): Promise<void> {
    const r = job.request;
    const plan: StagePlan = planStage(r, config);
    const log = logger.child({
      correlationId: r.correlationId,
      requestId: r.requestId,
      modelName: r.modelName,
      ...(plan.stage !== undefined ? { stage: plan.stage } : {}),
    });
    let infraFailures = 0;
    for (;;) {
      job.attempts++;
      l.status = 'running';
      await requireLedger().update(r.requestId, { status: 'running', attempts: job.attempts });
      let outcome: RetrainOutcome;
      try {
        outcome = await retrainOnce(r, onceDeps, {
          extendToLatest: job.attempts > 1,
          minSamples: plan.minSamples,
          ...(plan.stage !== undefined ? { stage: plan.stage } : {}),
        });
      } catch (err) {
        const retriable = isRetriable(err);
        if (retriable && job.attempts < config.dataMaxAttempts) {
          if (closing) {
            await requireLedger().update(r.requestId, { status: 'queued', reason: describeError(err) });
            return;
          }
          l.status = 'waiting-for-data';
          await requireLedger().update(r.requestId, {
            status: 'waiting-for-data',
            reason: describeError(err),
          });
          const noData = err instanceof NotEnoughDataError;
          if (!noData) infraFailures++;
          const retryInMs = noData
            ? config.dataRetryMs
            : infraRetryDelayMs(config.dataRetryMs, infraFailures);
          const message = noData
            ? 'not enough data yet; waiting for more'
            : 'retrain failed for now (retriable); retrying later';
          log.info(message, {
            reason: describeError(err),
            attempt: job.attempts,
            maxAttempts: config.dataMaxAttempts,
            retryInMs,
          });
          await sleep(retryInMs, stopping.signal);
          if (closing) {
            // Resumed on the next start.
            await requireLedger().update(r.requestId, { status: 'queued' });
            return;
          }
          continue;
        }
        const insufficient = err instanceof NotEnoughDataError;
        const status: RequestStatus = insufficient ? 'insufficient-data' : 'failed';
        const reason = insufficient
          ? `not enough data: ${err.available} of ${err.required} samples after ${job.attempts} attempt(s)`
          : `retrain failed: ${describeError(err)}`;
        log.error(insufficient ? 'retrain given up: not enough data' : 'retrain failed', {
          action: 'rejected',
          outcome: 'failure',
          reason,
        });
        metrics.trainings.inc({ outcome: status });
        metrics.rejections.inc({ cause: status });
        await finishRecord(job, status, reason);
        await publish(failureEvent(r, reason, now()));
        return;
      }
      // The follow-up is queued before the record is final, so whoever sees this request's final status
      // (the ledger, /status, a test) also finds its model event published right after, with no await between.
      const followUp = plan.followUp ? await queueFollowUp(l, plan.followUp, log) : undefined;
      await finishRecord(job, outcome.status, outcome.reason, outcome.version);
      await publish(
        modelEventFor(outcome, r, now(), {
          ...(plan.stage !== undefined ? { stage: plan.stage } : {}),
          ...(followUp ? { followUpRequestId: followUp } : {}),
        }),
      );
      return;
    }
  }

  /** Records and queues (first in its lane) the stage-2 follow-up of a stage-1 retrain; returns its id. */
  async function queueFollowUp(l: Lane, followUp: RetrainRequest, log: typeof logger): Promise<string> {
    const book = requireLedger();
    if (!book.get(followUp.requestId)) {
      const at = new Date().toISOString();
      await book.put({
        requestId: followUp.requestId,
        correlationId: followUp.correlationId,
        modelName: followUp.modelName,
        championVersion: followUp.championVersion,
        status: 'queued',
        receivedAt: at,
        updatedAt: at,
        attempts: 0,
        request: followUp,
      });
      l.queue.unshift({ request: followUp, attempts: 0 });
      updateQueueGauge();
      metrics.requests.inc({ result: 'follow-up' });
    }
    log.info('stage 1 ended; stage-2 retrain queued on more data', {
      action: 'retrain-request-follow-up',
      followUpRequestId: followUp.requestId,
      minSamples: config.minSamples,
    });
    return followUp.requestId;
  }

  function kick(name: string): void {
    const l = lane(name);
    if (l.running || closing) return;
    l.running = (async () => {
      try {
        while (!closing) {
          const job = l.queue.shift();
          updateQueueGauge();
          if (!job) break;
          l.current = job;
          try {
            await runJob(l, job);
          } catch (err) {
            // Only ledger writes can land here (disk full…): keep the lane alive, the request is resumed on restart.
            logger.error('retrain job crashed', {
              correlationId: job.request.correlationId,
              requestId: job.request.requestId,
              err: describeError(err),
            });
          } finally {
            l.current = undefined;
            l.status = undefined;
          }
        }
      } finally {
        l.running = undefined;
      }
    })();
  }

  function sameEpisode(a: RetrainRequest, b: RetrainRequest): boolean {
    return a.modelName === b.modelName && a.championVersion === b.championVersion;
  }

  async function submit(value: unknown): Promise<'accepted' | 'duplicate' | 'coalesced'> {
    const parsed = parseRetrainRequest(value);
    if (!parsed.ok) {
      metrics.requests.inc({ result: 'invalid' });
      logger.warn('retrain request invalid; dead-lettered', { reason: parsed.reason });
      throw new ValidationError('invalid_retrain_request', `invalid retrain request: ${parsed.reason}`);
    }
    const r = parsed.value;
    if (r.modelName !== config.modelName) {
      // Only the configured model: a request for any other name would open a queue (and ledger records) of its own.
      metrics.requests.inc({ result: 'wrong-model' });
      logger.warn(
        `retrain request for model ${r.modelName} refused: this retrainer serves ${config.modelName}`,
        {
          correlationId: r.correlationId,
          requestId: r.requestId,
          action: 'retrain-request-refused',
        },
      );
      throw new ValidationError(
        'unknown_model',
        `retrain request for model ${JSON.stringify(r.modelName)}: this retrainer serves ${config.modelName}`,
      );
    }
    const book = requireLedger();
    const log = logger.child({
      correlationId: r.correlationId,
      requestId: r.requestId,
      modelName: r.modelName,
    });
    log.info('retrain request received', {
      action: 'retrain-request-received',
      kind: r.kind,
      championVersion: r.championVersion,
      groupKey: r.groupKey,
      window: r.window,
      liveAccuracy: r.liveAccuracy,
      features: r.features.map((f) => f.feature),
    });
    const known = book.get(r.requestId);
    if (known) {
      metrics.requests.inc({ result: 'duplicate' });
      log.info('retrain request already handled; ignored', {
        action: 'retrain-request-duplicate',
        status: known.status,
        version: known.version,
      });
      return 'duplicate';
    }
    const at = new Date().toISOString();
    const l = lane(r.modelName);
    // The same drift episode, or (bounded queue) the newest waiting request when `maxQueued` already wait.
    const episodeJob =
      [l.current, ...l.queue].find((j): j is Job => j !== undefined && sameEpisode(j.request, r)) ??
      (l.queue.length >= config.maxQueued ? l.queue.at(-1) : undefined);
    if (episodeJob) {
      metrics.requests.inc({ result: 'coalesced' });
      await book.put({
        requestId: r.requestId,
        correlationId: r.correlationId,
        modelName: r.modelName,
        championVersion: r.championVersion,
        status: 'coalesced',
        coalescedInto: episodeJob.request.requestId,
        receivedAt: at,
        updatedAt: at,
        attempts: 0,
        reason: `${sameEpisode(episodeJob.request, r) ? 'same drift episode as' : `queue full (${config.maxQueued} waiting): into`} ${episodeJob.request.requestId} (correlation ${episodeJob.request.correlationId}), already ${episodeJob === l.current ? 'in training' : 'queued'}`,
      });
      log.info('retrain request coalesced into the one in progress', {
        action: 'retrain-request-coalesced',
        coalescedInto: episodeJob.request.requestId,
        intoCorrelationId: episodeJob.request.correlationId,
      });
      return 'coalesced';
    }
    await book.put({
      requestId: r.requestId,
      correlationId: r.correlationId,
      modelName: r.modelName,
      championVersion: r.championVersion,
      status: 'queued',
      receivedAt: at,
      updatedAt: at,
      attempts: 0,
      request: r,
    });
    metrics.requests.inc({ result: 'accepted' });
    l.queue.push({ request: r, attempts: 0 });
    updateQueueGauge();
    kick(r.modelName);
    return 'accepted';
  }

  return {
    metrics,

    async start() {
      if (started) return;
      ledger = await RequestLedger.open(config.stateDir, { logger, maxFinished: config.ledgerMaxFinished });
      trainer.prepare?.();
      for (const rec of ledger.pending()) {
        if (!rec.request) continue;
        logger.info('resuming retrain request', {
          correlationId: rec.correlationId,
          requestId: rec.requestId,
          modelName: rec.modelName,
          status: rec.status,
          attempts: rec.attempts,
        });
        lane(rec.modelName).queue.push({ request: rec.request, attempts: rec.attempts });
      }
      updateQueueGauge();
      started = true;
      for (const name of lanes.keys()) kick(name);
      if (deps.consumeSamples ?? true) {
        sink = await startSampleBusSink({
          bus: deps.bus,
          store: deps.store,
          logger,
          onAppend: (appended, invalid) => {
            metrics.samplesAppended.inc(appended);
            if (invalid > 0) metrics.samplesInvalid.inc(invalid);
          },
        });
      }
      // While closing, submit still records a request durably (as queued): it is trained after the next start.
      subscription = await deps.bus.subscribe(
        BUS_TOPICS.retrainRequests,
        { group: RETRAINER_GROUP },
        async (message: BusMessage) => {
          await submit(message.value);
        },
      );
      logger.info('retrainer consuming retrain requests', {
        bus: deps.bus.kind,
        store: deps.store.kind,
        registry: deps.registry.kind,
        trainer: trainer.kind,
        resumed: ledger.pending().length,
      });
    },

    submit,

    async idle() {
      for (;;) {
        const running = [...lanes.values()]
          .map((l) => l.running)
          .filter((p): p is Promise<void> => p !== undefined);
        if (running.length === 0) return;
        await Promise.all(running);
      }
    },

    status() {
      const handled: Record<string, number> = {};
      for (const r of ledger?.all() ?? [])
        if (isFinal(r.status)) handled[r.status] = (handled[r.status] ?? 0) + 1;
      const out: Record<string, LaneStatus> = {};
      for (const [name, l] of lanes) {
        out[name] = {
          queued: l.queue.length,
          ...(l.current
            ? {
                current: {
                  requestId: l.current.request.requestId,
                  correlationId: l.current.request.correlationId,
                  status: l.status ?? 'queued',
                  attempts: l.current.attempts,
                },
              }
            : {}),
        };
      }
      return { started, closing, trainer: trainer.kind, lanes: out, handled, ...(last ? { last } : {}) };
    },

    record(requestId) {
      return ledger?.get(requestId);
    },

    async close() {
      if (closing) return;
      closing = true;
      stopping.abort(new Error('retrainer is shutting down'));
      await subscription?.close();
      await sink?.close();
      const running = [...lanes.values()]
        .map((l) => l.running)
        .filter((p): p is Promise<void> => p !== undefined);
      if (running.length > 0)
        logger.info('waiting for the running training to finish or time out', {
          trainings: running.length,
          timeoutMs: config.timeoutMs,
        });
      await Promise.all(running);
      const left = [...lanes.values()].reduce((n, l) => n + l.queue.length, 0);
      if (left > 0) logger.info('retrain requests left queued for the next start', { queued: left });
      if (ownsTrainer) await trainer.close?.();
    },
  };
}
