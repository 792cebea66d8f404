/**
 * How well and how fast the loop heals: accuracy per phase, and for each
 * drifting phase the samples (and seconds, on the wall clock) from the phase
 * start until the rolling accuracy over the last `window` labelled samples is
 * back within `tolerance` of the pre-drift level.
 *
 * Definitions (the same for `npm run evaluate` on the sample clock and
 * `npm start -- --exit-after-phases` on the wall clock):
 * - pre-drift level: the accuracy over the last stationary phase before the
 *   first drifting phase (the baseline); without one, null (nothing to heal to).
 * - healed at k: the first k >= `window` (counted in labelled samples from the
 *   phase start) at which the rolling window lies entirely inside the phase and
 *   its accuracy is >= pre-drift level − tolerance. The window must lie inside
 *   the phase so a window of pre-drift samples never counts as healed; hence a
 *   drift that never hurt accuracy heals at exactly `window`.
 * - samplesToHeal: that k, or null when the phase ended first.
 */

export interface PhaseSpan {
  name: string;
  /** First sample index (inclusive). */
  start: number;
  /** Last sample index (exclusive). */
  end: number;
  /** False for stationary phases. */
  changesAnything: boolean;
}

export interface PhaseHealing {
  name: string;
  changesAnything: boolean;
  /** Labelled samples seen in the phase. */
  labelled: number;
  /** Accuracy over the whole phase; null without labels. */
  accuracy: number | null;
  /** Drifting phases only: labelled samples from the phase start to healed, or null. */
  samplesToHeal: number | null;
  /**
   * Drifting phases only, when wall-clock times were given: seconds from the phase's first sample to healed,
   * or null.
   */
  secondsToHeal?: number | null;
  /** Lowest rolling accuracy seen inside the phase (full windows only); null if none. */
  minRollingAccuracy: number | null;
}

export interface HealingOptions {
  /** Rolling window of labelled samples. Default 1,000. */
  window?: number;
  /** Allowed gap to the pre-drift level (absolute accuracy). Default 0.02 (2 points). */
  tolerance?: number;
}

/** Feeds labelled outcomes in sample order; reads a per-phase summary. */
export class HealingTracker {
  private readonly window: number;
  private readonly tolerance: number;
  private readonly ring: Uint8Array;
  private ringPos = 0;
  private ringFill = 0;
  private ringCorrect = 0;
  private phaseIdx = -1;
  private readonly labelled: number[];
  private readonly correct: number[];
  private readonly healedAt: (number | null)[];
  private readonly healedTime: (number | null)[];
  private readonly phaseStartTime: (number | null)[];
  private readonly minRolling: (number | null)[];
  private preDrift: number | null = null;

  constructor(
    private readonly phases: readonly PhaseSpan[],
    options: HealingOptions = {},
  ) {
    this.window = options.window ?? 1_000;
    this.tolerance = options.tolerance ?? 0.02;
    if (!Number.isInteger(this.window) || this.window < 1)
      throw new RangeError(`window must be a positive integer, got ${this.window}`);
    if (!(this.tolerance >= 0 && this.tolerance < 1))
      throw new RangeError(`tolerance must be in [0, 1), got ${this.tolerance}`);
    this.ring = new Uint8Array(this.window);
    this.labelled = phases.map(() => 0);
    this.correct = phases.map(() => 0);
    this.healedAt = phases.map(() => null);
    this.healedTime = phases.map(() => null);
    this.phaseStartTime = phases.map(() => null);
    this.minRolling = phases.map(() => null);
  }

  /** The phase index of a sample, or -1 outside every phase. */
  phaseOf(sampleIndex: number): number {
    for (let i = 0; i < this.phases.length; i++) {
      const p = this.phases[i] as PhaseSpan;
      if (sampleIndex >= p.start && sampleIndex < p.end) return i;
    }
    return -1;
  }

  /** Records the wall-clock time at which a phase's first sample was published. */
  markPhaseStart(phaseIndex: number, timeMs: number): void {
    if (phaseIndex >= 0 && phaseIndex < this.phases.length && this.phaseStartTime[phaseIndex] === null)
      this.phaseStartTime[phaseIndex] = timeMs;
  }

  /**
   * One labelled outcome of sample `sampleIndex` (labels must arrive in sample order per phase; small
   * reordering is harmless).
   */
  record(sampleIndex: number, isCorrect: boolean, timeMs?: number): void {
    const p = this.phaseOf(sampleIndex);
    if (p < 0) return;
    if (p !== this.phaseIdx) this.enterPhase(p);
    if (this.ringFill === this.window) this.ringCorrect -= this.ring[this.ringPos] as number;
    else this.ringFill++;
    this.ring[this.ringPos] = isCorrect ? 1 : 0;
    this.ringCorrect += isCorrect ? 1 : 0;
    this.ringPos = (this.ringPos + 1) % this.window;
    this.labelled[p] = (this.labelled[p] as number) + 1;
    if (isCorrect) this.correct[p] = (this.correct[p] as number) + 1;
    const n = this.labelled[p] as number;
    if (n >= this.window) {
      const rolling = this.ringCorrect / this.window;
      const min = this.minRolling[p];
      if (min === null || min === undefined || rolling < min) this.minRolling[p] = rolling;
      const phase = this.phases[p] as PhaseSpan;
      if (
        phase.changesAnything &&
        this.healedAt[p] === null &&
        this.preDrift !== null &&
        rolling >= this.preDrift - this.tolerance
      ) {
        this.healedAt[p] = n;
        if (timeMs !== undefined) this.healedTime[p] = timeMs;
      }
    }
  }

  private enterPhase(p: number): void {
    // The pre-drift level is fixed by the last stationary phase before the first drifting one.
    if (this.preDrift === null && (this.phases[p] as PhaseSpan).changesAnything) {
      for (let q = p - 1; q >= 0; q--) {
        const phase = this.phases[q] as PhaseSpan;
        const n = this.labelled[q] as number;
        if (!phase.changesAnything && n > 0) {
          this.preDrift = (this.correct[q] as number) / n;
          break;
        }
      }
    }
    this.phaseIdx = p;
  }

  /** The pre-drift accuracy level, once a drifting phase has started. */
  get preDriftAccuracy(): number | null {
    return this.preDrift;
  }

  /** Per-phase summary; `secondsToHeal` only when phase start times were marked. */
  summary(): PhaseHealing[] {
    return this.phases.map((phase, i) => {
      const n = this.labelled[i] as number;
      const out: PhaseHealing = {
        name: phase.name,
        changesAnything: phase.changesAnything,
        labelled: n,
        accuracy: n > 0 ? (this.correct[i] as number) / n : null,
        samplesToHeal: phase.changesAnything ? (this.healedAt[i] ?? null) : null,
        minRollingAccuracy: this.minRolling[i] ?? null,
      };
      const started = this.phaseStartTime[i];
      if (phase.changesAnything && started !== null && started !== undefined) {
        const healed = this.healedTime[i];
        out.secondsToHeal =
          healed === null || healed === undefined ? null : Math.max(0, (healed - started) / 1000);
      }
      return out;
    });
  }
}
