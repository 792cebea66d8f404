import { ValidationError } from '../errors.ts';
import {
  labelledSampleSchema,
  matchesWindow,
  sampleKey,
  type LabelledSample,
  type LabelledSampleStore,
  type SampleStoreStats,
  type SampleWindowQuery,
} from './types.ts';

/**
 * A bounded in-memory {@link LabelledSampleStore}: the offline evaluator's store
 * (it replays a scenario on the sample clock; nothing needs to survive it) and a
 * test double. Not durable: services use the file or Kafka store.
 */
export class MemorySampleStore implements LabelledSampleStore {
  readonly kind = 'memory';
  private samples: LabelledSample[] = [];
  private closed = false;

  /** @param maxSamples the oldest samples are dropped beyond this many. */
  constructor(private readonly maxSamples = 200_000) {
    if (!Number.isInteger(maxSamples) || maxSamples < 1)
      throw new RangeError(`maxSamples must be a positive integer, got ${maxSamples}`);
  }

  async append(samples: readonly LabelledSample[]): Promise<void> {
    if (this.closed) throw new Error('sample store is closed');
    const parsed: LabelledSample[] = [];
    for (const s of samples) {
      const r = labelledSampleSchema.safeParse(s);
      if (!r.success)
        throw new ValidationError(
          'invalid_sample',
          `invalid labelled sample: ${r.error.issues[0]?.path.join('.') ?? ''} ${r.error.issues[0]?.message ?? ''}`,
        );
      parsed.push(r.data as LabelledSample);
    }
    this.samples.push(...parsed);
    if (this.samples.length > this.maxSamples)
      this.samples = this.samples.slice(this.samples.length - this.maxSamples);
  }

  async readWindow(query: SampleWindowQuery = {}): Promise<LabelledSample[]> {
    const machines = query.machineIds ? new Set(query.machineIds) : undefined;
    const seen = new Set<string>();
    const out: LabelledSample[] = [];
    for (const s of this.samples) {
      if (!matchesWindow(s, query, machines)) continue;
      const key = sampleKey(s);
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(s);
    }
    return query.limit !== undefined && out.length > query.limit ? out.slice(out.length - query.limit) : out;
  }

  async stats(): Promise<SampleStoreStats> {
    const out: SampleStoreStats = { samples: this.samples.length, segments: 1, bytes: 0, skippedLines: 0 };
    for (const s of this.samples) {
      out.oldestTs = Math.min(out.oldestTs ?? s.ts, s.ts);
      out.newestTs = Math.max(out.newestTs ?? s.ts, s.ts);
      if (s.sampleIndex !== undefined) {
        out.minSampleIndex = Math.min(out.minSampleIndex ?? s.sampleIndex, s.sampleIndex);
        out.maxSampleIndex = Math.max(out.maxSampleIndex ?? s.sampleIndex, s.sampleIndex);
      }
    }
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
