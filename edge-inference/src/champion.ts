import { BUS_TOPICS, type EventBus, type Subscription } from '../../common/bus/types.ts';
import { ArtifactError, describeError, isRetriable } from '../../common/errors.ts';
import { parseModelEvent, type ModelRejected } from '../../common/events/schemas.ts';
import type { Logger } from '../../common/logging/logger.ts';
import { ModelSignatureError, type ModelTrust } from '../../common/model/signature.ts';
import { metadataChecksum } from '../../common/model/version-signature.ts';
import { sleep } from '../../common/util/sleep.ts';
import type { EdgeMetrics } from './metrics.ts';
import type { ModelHolder } from './model-holder.ts';
import type { ChampionRef, ModelChange, RegistryPort } from './ports.ts';

/**
 * Champion following: which model the worker serves. At start it waits for a
 * champion in the registry (not ready until one loads); then it follows the
 * champion through model events on the bus (`model-promoted`,
 * `model-rolled-back`: hints to ask the registry, never acted on by themselves;
 * the registry's `champion` alias decides) and through the registry watch, which also covers
 * processes that do not share a bus and events that never arrived. Each new
 * champion is fetched (checksums verified), loaded beside the stream and
 * swapped into the {@link ModelHolder}; a version whose artifact is refused is
 * not retried by the watch, only by an explicit model event.
 */

/**
 * Reads a `driftline.model-events` value; undefined for events the worker ignores (`model-rejected`) or
 * malformed ones (reason given).
 */
export function toModelChange(value: unknown): { change?: ModelChange; problem?: string } {
  const parsed = parseModelEvent(value);
  if (!parsed.ok) return { problem: parsed.reason };
  const e = parsed.value;
  if (e.type !== 'model-promoted' && e.type !== 'model-rolled-back') return {};
  return {
    change: { type: e.type, modelName: e.modelName, version: e.version, correlationId: e.correlationId },
  };
}

/** What a {@link ChampionFollower} works with. */
export interface ChampionFollowerOptions {
  /** Where champions come from; without it only a model given to the holder is served and events are ignored. */
  registry: RegistryPort | undefined;
  /** Registered model name to serve. */
  modelName: string;
  holder: ModelHolder;
  /** Model events are read from it (consumer group `busGroup`). */
  bus: EventBus;
  busGroup: string;
  /** Registry watch interval, ms; 0 disables the watch. */
  pollMs: number;
  logger: Logger;
  metrics: EdgeMetrics;
  /** Aborted when the worker stops: waiting and following end. */
  signal: AbortSignal;
  /**
   * Public keys a fetched artifact's signatures must verify with before it is loaded — the metadata
   * signature and the registry-version signature (bound to this name, version number and checksum); an
   * unsigned, wrongly signed or replayed version is refused (counted by reason, logged) and the current
   * champion keeps serving. Without it signatures are not checked (tests with fake registries only; the
   * services always pass one).
   */
  trust?: ModelTrust;
  /** A challenger was rejected (the champion stays): the retrain trigger may adopt the shift it answered. */
  onRejected?: (event: ModelRejected) => void;
}

/** Loads, follows and hot-swaps the champion (see the module comment). */
export class ChampionFollower {
  private readonly refusedVersions = new Set<string>();
  /**
   * Versions refused for their signatures, with the registry-version signature they carried then: such a
   * version is tried again once the registry holds another signature for it (a champion promoted before
   * versions were signed, signed in place by the bootstrap-champion Job or `npm start`: the upgrade).
   */
  private readonly refusedSignatures = new Map<string, string | undefined>();
  private refusedFetchCount = 0;
  private unwatch: (() => void) | undefined;
  private followQueue: Promise<unknown> = Promise.resolve();
  private modelEvents: Subscription | undefined;

  constructor(private readonly options: ChampionFollowerOptions) {}

  /** Versions whose artifact the registry handed out but failed its checksums or its signature. */
  get refusedFetches(): number {
    return this.refusedFetchCount;
  }

  /** Refused before, and nothing changed since: not tried again by the watch. */
  private isRefused(champion: ChampionRef): boolean {
    if (this.refusedVersions.has(champion.version)) return true;
    return (
      this.refusedSignatures.has(champion.version) &&
      this.refusedSignatures.get(champion.version) === champion.versionSignature
    );
  }

  /** Loads `modelName`@`version` from the registry and hot-swaps it. False when refused. */
  async loadVersion(version: string, correlationId?: string): Promise<boolean> {
    const { registry: reg, modelName, holder, logger, metrics } = this.options;
    if (!reg) throw new Error('no model registry configured');
    if (holder.version === version) return true;
    const log = correlationId ? logger.child({ correlationId }) : logger;
    log.info(`fetching model ${modelName}@${version}`, { action: 'model-fetch', modelVersion: version });
    let dir: string;
    try {
      dir = await reg.fetchArtifact(modelName, version);
    } catch (err) {
      if (err instanceof ArtifactError) {
        this.refusedVersions.add(version);
        this.refusedFetchCount++;
        metrics.loadsRefused.inc({ reason: 'artifact_invalid' });
        log.error(`model load refused (${describeError(err)}); keeping ${holder.version ?? 'no model'}`, {
          action: 'model-load',
          outcome: 'failure',
          modelVersion: version,
        });
        return false;
      }
      throw err;
    }
    if (this.options.trust) {
      // The registry entry first (a transport error here is retried, not a refusal).
      const registered = await reg.getVersion(modelName, version);
      try {
        await this.options.trust.verifyArtifact(dir);
        // Bound to this registry version: an older signed artifact registered again is refused.
        this.options.trust.verifyVersion(
          { name: modelName, version, checksum: await metadataChecksum(dir) },
          registered?.versionSignature,
        );
      } catch (err) {
        if (!(err instanceof ArtifactError)) throw err;
        const reason = err instanceof ModelSignatureError ? err.reason : 'artifact_invalid';
        if (err instanceof ModelSignatureError)
          this.refusedSignatures.set(version, registered?.versionSignature);
        else this.refusedVersions.add(version);
        this.refusedFetchCount++;
        metrics.loadsRefused.inc({ reason });
        log.error(
          `model ${modelName}@${version} refused: ${describeError(err)}; keeping ${holder.version ?? 'no model'}`,
          {
            action: 'model-load',
            outcome: 'failure',
            reason,
            modelVersion: version,
            ...(holder.version !== undefined ? { keptVersion: holder.version } : {}),
          },
        );
        return false;
      }
    }
    const outcome = await holder.load(dir, { version, ...(correlationId ? { correlationId } : {}) });
    if (!outcome.ok && outcome.reason === 'artifact_invalid') this.refusedVersions.add(version);
    return outcome.ok;
  }

  /** Subscribes to model events on the bus (with a registry only). */
  async subscribe(): Promise<void> {
    const { registry, bus, busGroup, logger, signal } = this.options;
    if (!registry) return;
    this.modelEvents = await bus.subscribe(
      BUS_TOPICS.modelEvents,
      { group: busGroup, fromBeginning: false },
      async (msg) => {
        const rejected = parseModelEvent(msg.value);
        if (rejected.ok && rejected.value.type === 'model-rejected' && !signal.aborted) {
          try {
            this.options.onRejected?.(rejected.value);
          } catch (err) {
            logger.error('model-rejected event could not be applied', {
              correlationId: rejected.value.correlationId,
              err: describeError(err),
            });
          }
        }
        const { change, problem } = toModelChange(msg.value);
        if (problem) logger.warn(`ignoring a malformed model event: ${problem}`, { offset: msg.offset });
        if (!change || signal.aborted) return;
        try {
          await this.onModelChange(change);
        } catch (err) {
          logger.error('model event could not be applied', {
            correlationId: change.correlationId,
            err: describeError(err),
          });
          if (isRetriable(err)) throw err;
        }
      },
    );
  }

  /** Resolves once a model serves (or the worker stops), polling the registry for a champion it can load. */
  async waitForChampion(): Promise<void> {
    const { registry: reg, modelName, holder, logger, signal, pollMs } = this.options;
    if (!reg) {
      if (!holder.current)
        logger.warn('no model registry and no initial model: waiting for a model (not ready)');
      await Promise.race([
        holder.waitForModel(),
        new Promise((r) => signal.addEventListener('abort', r, { once: true })),
      ]);
      return;
    }
    let announced: string | undefined;
    while (!holder.current && !signal.aborted) {
      let note: string | undefined;
      try {
        const champion = await reg.getChampion(modelName);
        if (!champion) note = `no champion for ${modelName} yet; waiting (not ready)`;
        else if (this.isRefused(champion))
          note = `champion ${modelName}@${champion.version} was refused; waiting for another (not ready)`;
        else if (await this.loadVersion(champion.version)) break;
      } catch (err) {
        note = `registry not available (${describeError(err)}); retrying (not ready)`;
      }
      if (note && note !== announced) {
        announced = note;
        logger.warn(note, { action: 'model-wait' });
      }
      await sleep(pollMs > 0 ? Math.min(pollMs, 1000) : 1000, signal);
    }
  }

  /**
   * Follows the champion without the bus (separate processes on the in-process bus, missed
   * events): the registry's watch, or a poll every `pollMs`.
   */
  follow(): void {
    const { registry: reg, modelName, pollMs, logger } = this.options;
    if (!reg || pollMs <= 0) return;
    if (reg.watchChampion) {
      // emitInitial: a champion that changed between the start-up load and the first poll is not missed.
      this.unwatch = reg.watchChampion(modelName, (c) => this.onChampionSeen(c), {
        intervalMs: pollMs,
        emitInitial: true,
        onError: (err) => logger.debug('champion watch failed', { err: describeError(err) }),
      });
      return;
    }
    const timer = setInterval(() => {
      reg.getChampion(modelName).then(
        (c) => this.onChampionSeen(c),
        (err: unknown) => logger.debug('champion poll failed', { err: describeError(err) }),
      );
    }, pollMs);
    timer.unref();
    this.unwatch = () => clearInterval(timer);
  }

  /** Stops the registry watch (first thing on stop). */
  stopWatching(): void {
    this.unwatch?.();
  }

  /** Waits for a load the watch started, then closes the model-event subscription. */
  async close(): Promise<void> {
    await this.followQueue;
    await this.modelEvents?.close();
  }

  /**
   * A model event is a hint to look, never an order: the worker asks the registry for its `champion`
   * alias and serves that. A forged or stale event (a version the registry rejected, or one that is
   * not the champion) moves nothing; it is counted in `driftline_edge_model_events_ignored_total`.
   */
  private async onModelChange(change: ModelChange): Promise<void> {
    const { registry: reg, modelName, holder, logger, metrics } = this.options;
    if (change.modelName !== modelName || !reg) return;
    const log = change.correlationId ? logger.child({ correlationId: change.correlationId }) : logger;
    log.info(`${change.type}: ${change.modelName}@${change.version}; asking the registry for its champion`, {
      action: change.type,
      modelVersion: change.version,
    });
    const champion = await reg.getChampion(modelName);
    if (!champion || champion.version !== change.version) {
      metrics.modelEventsIgnored.inc({ reason: 'not_champion' });
      log.warn(
        `${change.type} names ${modelName}@${change.version} but the registry champion is ` +
          `${champion?.version ?? 'none'}: following the registry`,
        { action: 'model-event-ignored', modelVersion: change.version },
      );
    }
    if (!champion || champion.version === holder.version) return;
    // An explicit event for the current champion retries it when refused earlier (its artifact may have
    // been repaired); a stale event for another version does not.
    if (champion.version === change.version) {
      this.refusedVersions.delete(champion.version);
      this.refusedSignatures.delete(champion.version);
    } else if (this.isRefused(champion)) return;
    await this.loadVersion(champion.version, change.correlationId);
  }

  private onChampionSeen(champion: ChampionRef | undefined): void {
    const { holder, signal, logger } = this.options;
    if (!champion || signal.aborted || champion.version === holder.version || this.isRefused(champion))
      return;
    this.followQueue = this.followQueue
      .then(async () => {
        if (signal.aborted || champion.version === holder.version) return;
        logger.info(
          `registry champion is ${champion.version}, serving ${holder.version ?? 'none'}: loading`,
          { action: 'model-follow' },
        );
        await this.loadVersion(champion.version);
      })
      .catch((err: unknown) =>
        logger.warn('following the registry champion failed; will retry', { err: describeError(err) }),
      );
  }
}
