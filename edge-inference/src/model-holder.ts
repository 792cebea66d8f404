import { ArtifactError, describeError } from '../../common/errors.ts';
import { silentLogger, type Logger } from '../../common/logging/logger.ts';
import type { LoadedModel } from '../../common/model/types.ts';
import { EFFICIENCY_CLASSES, FEATURES } from '../../common/schema/features.ts';
import type { EdgeMetrics } from './metrics.ts';

/**
 * Holds the model the stream predicts with, and swaps it without pausing the stream.
 *
 * - A batch calls {@link ModelHolder.acquire} once at its start and predicts every
 *   row with that model, then releases it: a batch never mixes two models.
 * - {@link ModelHolder.swap} is one reference assignment; the next batch to start
 *   gets the new model. The old one is disposed when the last batch that holds it
 *   releases it.
 * - {@link ModelHolder.load} reads and verifies an artifact off the critical path
 *   (the stream keeps using the current model meanwhile), then swaps. An artifact
 *   that is corrupt or incompatible is refused with one clear log line and a
 *   counter; the current model stays.
 */

/** Reads and verifies an artifact directory (in production `loadArtifact(dir, tf)`). */
export type ArtifactLoader = (dir: string) => Promise<LoadedModel>;

export interface ModelHolderOptions {
  logger?: Logger;
  /** Turns an artifact directory into a model; needed only by {@link ModelHolder.load}. */
  loader?: ArtifactLoader;
  /** Model info gauge, swap and refusal counters. */
  metrics?: EdgeMetrics;
}

/** A model held for the duration of one batch. Release exactly once. */
export interface ModelLease {
  readonly model: LoadedModel;
  /** The version reported with its predictions (the registry's number, see {@link ModelHolder.swap}). */
  readonly version: string;
  release(): void;
}

/** Outcome of {@link ModelHolder.load}. */
export type LoadOutcome =
  | { ok: true; model: LoadedModel }
  | { ok: false; reason: 'artifact_invalid' | 'load_failed' | 'superseded' | 'closed'; error: string };

/** What a swap listener hears about. */
export interface SwapEvent {
  model: LoadedModel;
  version: string;
  previous: LoadedModel | undefined;
  previousVersion: string | undefined;
}

/** Throws an {@link ArtifactError} unless the model speaks this worker's feature and class vocabulary. */
export function checkCompatible(model: LoadedModel): void {
  const m = model.metadata;
  if (!m || typeof m.version !== 'string' || m.version.length === 0)
    throw new ArtifactError('model metadata has no version');
  if (m.features && (m.features.length !== FEATURES.length || m.features.some((f, i) => f !== FEATURES[i]))) {
    throw new ArtifactError(
      `model features [${m.features.join(', ')}] do not match this worker's [${FEATURES.join(', ')}]`,
    );
  }
  if (
    m.classes &&
    (m.classes.length !== EFFICIENCY_CLASSES.length || m.classes.some((c, i) => c !== EFFICIENCY_CLASSES[i]))
  ) {
    throw new ArtifactError(
      `model classes [${m.classes.join(', ')}] do not match this worker's [${EFFICIENCY_CLASSES.join(', ')}]`,
    );
  }
}

export class ModelHolder {
  private model: LoadedModel | undefined;
  private servedVersion: string | undefined;
  /** Leases outstanding per model. */
  private readonly leases = new Map<LoadedModel, number>();
  /** Models swapped out but still leased by an in-flight batch. */
  private readonly retired = new Set<LoadedModel>();
  private readonly listeners: ((e: SwapEvent) => void)[] = [];
  private readonly waiters: ((m: LoadedModel) => void)[] = [];
  private readonly logger: Logger;
  private loadSeq = 0;
  private refused = 0;
  private closed = false;
  private drained: (() => void) | undefined;

  constructor(private readonly options: ModelHolderOptions = {}) {
    this.logger = options.logger ?? silentLogger();
  }

  /** The model the next batch will use, if any. */
  get current(): LoadedModel | undefined {
    return this.model;
  }

  /** Version of the current model, as reported with predictions. */
  get version(): string | undefined {
    return this.servedVersion;
  }

  /** Artifacts refused so far. */
  get refusedLoads(): number {
    return this.refused;
  }

  /** Models swapped out that an in-flight batch still holds. */
  get retiredCount(): number {
    return this.retired.size;
  }

  /** Calls `listener` after every swap (drift reset, accuracy baseline, logs). */
  onSwap(listener: (e: SwapEvent) => void): void {
    this.listeners.push(listener);
  }

  /** Resolves with the current model, or with the first one swapped in. */
  waitForModel(): Promise<LoadedModel> {
    if (this.model) return Promise.resolve(this.model);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Takes the current model for one batch, or undefined when none is loaded. */
  acquire(): ModelLease | undefined {
    const model = this.model;
    const version = this.servedVersion;
    if (!model || version === undefined) return undefined;
    this.leases.set(model, (this.leases.get(model) ?? 0) + 1);
    let released = false;
    return {
      model,
      version,
      release: () => {
        if (released) return;
        released = true;
        const n = (this.leases.get(model) ?? 1) - 1;
        if (n > 0) {
          this.leases.set(model, n);
          return;
        }
        this.leases.delete(model);
        if (this.retired.has(model)) this.disposeRetired(model);
        this.checkDrained();
      },
    };
  }

  /**
   * Makes `model` current (an atomic reference switch): batches already running
   * finish with the model they hold; the next batch uses `model`. The previous
   * model is disposed once no batch holds it. Throws an {@link ArtifactError} for
   * an incompatible model (the current one stays).
   *
   * `version` is what predictions report: the registry's version number (an
   * artifact's own `metadata.version` keeps whatever the trainer wrote, e.g.
   * `bootstrap`). Default `model.metadata.version`.
   */
  swap(model: LoadedModel, version: string = model.metadata.version): void {
    if (this.closed) throw new Error('model holder is closed');
    checkCompatible(model);
    if (version.length === 0) throw new ArtifactError('model version must not be empty');
    const previous = this.model;
    const previousVersion = this.servedVersion;
    if (previous === model && previousVersion === version) return;
    this.model = model;
    this.servedVersion = version;
    this.retired.delete(model);
    const { metrics } = this.options;
    if (metrics) {
      if (previous && previousVersion !== undefined)
        metrics.modelInfo.remove({ name: previous.metadata.name, version: previousVersion });
      metrics.modelInfo.set({ name: model.metadata.name, version }, 1);
      metrics.modelSwaps.inc();
    }
    if (previous && previous !== model) {
      this.retired.add(previous);
      if (!this.leases.has(previous)) this.disposeRetired(previous);
    }
    this.logger.info(
      previous ? `model swapped: ${previousVersion} → ${version}` : `model loaded: ${version}`,
      {
        action: 'model-swap',
        modelVersion: version,
        ...(previousVersion !== undefined ? { previousVersion } : {}),
        dir: model.dir,
      },
    );
    for (const w of this.waiters.splice(0)) w(model);
    for (const l of this.listeners) {
      try {
        l({ model, version, previous, previousVersion });
      } catch (err) {
        this.logger.error('model swap listener failed', { err: describeError(err) });
      }
    }
  }

  /**
   * Loads and verifies the artifact in `dir` while the stream keeps predicting
   * with the current model, then swaps it in. Never throws: a corrupt or
   * incompatible artifact is refused (logged, counted) and the current model
   * stays. When a later `load` starts before this one finishes, the later one wins.
   * `meta.version` is the version predictions report (default the artifact's own).
   */
  async load(dir: string, meta: { correlationId?: string; version?: string } = {}): Promise<LoadOutcome> {
    const loader = this.options.loader;
    if (!loader) throw new Error('ModelHolder.load needs a loader');
    const seq = ++this.loadSeq;
    const started = performance.now();
    let model: LoadedModel;
    try {
      model = await loader(dir);
      try {
        checkCompatible(model);
      } catch (err) {
        this.safeDispose(model);
        throw err;
      }
    } catch (err) {
      const reason = err instanceof ArtifactError ? 'artifact_invalid' : 'load_failed';
      this.refused++;
      this.options.metrics?.loadsRefused.inc({ reason });
      this.logger.error(`model load refused (${describeError(err)}); keeping ${this.version ?? 'no model'}`, {
        action: 'model-load',
        outcome: 'failure',
        reason,
        dir,
        ...(meta.correlationId !== undefined ? { correlationId: meta.correlationId } : {}),
        ...(this.version !== undefined ? { keptVersion: this.version } : {}),
      });
      return { ok: false, reason, error: describeError(err) };
    }
    const version = meta.version ?? model.metadata.version;
    if (this.closed || seq !== this.loadSeq) {
      this.safeDispose(model);
      const reason = this.closed ? 'closed' : 'superseded';
      this.logger.info(`model ${version} loaded but not used: ${reason}`, {
        action: 'model-load',
        reason,
        ...(meta.correlationId !== undefined ? { correlationId: meta.correlationId } : {}),
      });
      return { ok: false, reason, error: reason };
    }
    this.swap(model, version);
    this.logger.info(
      `model ${version} verified and loaded in ${Math.round(performance.now() - started)} ms`,
      {
        action: 'model-load',
        outcome: 'success',
        modelVersion: version,
        ...(meta.correlationId !== undefined ? { correlationId: meta.correlationId } : {}),
        durationMs: Math.round(performance.now() - started),
      },
    );
    return { ok: true, model };
  }

  /** Waits for every leased model to be released, then disposes all models. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.leases.size > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    for (const m of this.retired) this.safeDispose(m);
    this.retired.clear();
    if (this.model) {
      if (this.servedVersion !== undefined)
        this.options.metrics?.modelInfo.remove({
          name: this.model.metadata.name,
          version: this.servedVersion,
        });
      this.safeDispose(this.model);
      this.model = undefined;
      this.servedVersion = undefined;
    }
  }

  private disposeRetired(model: LoadedModel): void {
    this.retired.delete(model);
    this.safeDispose(model);
  }

  private checkDrained(): void {
    if (this.leases.size === 0 && this.drained) {
      const d = this.drained;
      this.drained = undefined;
      d();
    }
  }

  private safeDispose(model: LoadedModel): void {
    try {
      model.dispose();
      this.logger.debug(`model ${model.metadata.version} disposed`, { modelVersion: model.metadata.version });
    } catch (err) {
      this.logger.warn('model dispose failed', {
        modelVersion: model.metadata.version,
        err: describeError(err),
      });
    }
  }
}
