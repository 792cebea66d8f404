import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DriftlineError, ValidationError, describeError } from '../errors.ts';
import { silentLogger, type Logger } from '../logging/logger.ts';
import { fsyncDir, isErrno, writeFileAtomic } from '../util/atomic-file.ts';
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
 * The embedded labelled-sample store: append-only JSON-lines segments in one
 * directory.
 *
 * Layout: `seg-000000000001.jsonl`, `seg-000000000002.jsonl`, … one sample per
 * line. When the active segment reaches `segmentRecords` it is fsync'd and
 * sealed: a sidecar `seg-….meta.json` (count, bytes, ts and sample-index
 * ranges) is written atomically, so readers skip segments outside a window
 * without reading them. Once the store holds more than `maxSamples` samples or
 * `maxBytes` bytes, the oldest sealed segments are deleted.
 *
 * One process writes (a `writer.lock` file holds its pid); any number of
 * processes may read concurrently with {@link openFileSampleStore}`({ readOnly: true })`.
 * A reader ignores a torn last line (a write in progress or a crash mid-write);
 * the writer truncates a torn tail when it reopens the store.
 * Writes reach the OS at once (visible to readers) and the disk at the next
 * fsync (every `fsyncIntervalMs`, at rotation and at close).
 */

/** Default directory of the embedded store. */
export const DEFAULT_SAMPLES_DIR = '.driftline/samples';

/** Options of {@link openFileSampleStore}. */
export interface FileSampleStoreOptions {
  /** Directory of the segments; created when missing. Default `.driftline/samples`. */
  dir?: string;
  /** Samples per segment before it is sealed and a new one started. Default 10,000. */
  segmentRecords?: number;
  /** Samples retained; beyond it the oldest segments are deleted. Default 500,000. */
  maxSamples?: number;
  /** Bytes retained; beyond it the oldest segments are deleted. Default 512 MiB. */
  maxBytes?: number;
  /** How often written data is fsync'd, ms; 0 fsyncs after every append. Default 1000. */
  fsyncIntervalMs?: number;
  /** Open for reading only (another process writes): no lock, `append` rejects. Default false. */
  readOnly?: boolean;
  /** Logs torn tails, retention deletions and sync failures. */
  logger?: Logger;
}

const SEGMENT_RE = /^seg-(\d{12})\.jsonl$/;
const segmentFile = (id: number): string => `seg-${String(id).padStart(12, '0')}.jsonl`;
const metaFile = (id: number): string => `seg-${String(id).padStart(12, '0')}.meta.json`;
const LOCK_FILE = 'writer.lock';

/** Directories this process holds the writer lock of. */
const openWriters = new Set<string>();

interface SegmentInfo {
  id: number;
  count: number;
  bytes: number;
  minTs?: number;
  maxTs?: number;
  minSampleIndex?: number;
  maxSampleIndex?: number;
  /** True once the sidecar is written and no more lines are appended. */
  sealed: boolean;
}

/** The sidecar of a sealed segment. */
interface SegmentMeta {
  format: 'driftline-samples-segment/1';
  count: number;
  bytes: number;
  minTs?: number;
  maxTs?: number;
  minSampleIndex?: number;
  maxSampleIndex?: number;
}

/** A store I/O failure (disk full, permissions…); retriable: the bus redelivers and the write is tried again. */
export class SampleStoreError extends DriftlineError {
  constructor(message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, { code: 'SAMPLE_STORE', retriable: options.retriable ?? true, cause: options.cause });
  }
}

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

function widen(info: SegmentInfo, s: LabelledSample): void {
  info.minTs = info.minTs === undefined ? s.ts : Math.min(info.minTs, s.ts);
  info.maxTs = info.maxTs === undefined ? s.ts : Math.max(info.maxTs, s.ts);
  if (s.sampleIndex !== undefined) {
    info.minSampleIndex =
      info.minSampleIndex === undefined ? s.sampleIndex : Math.min(info.minSampleIndex, s.sampleIndex);
    info.maxSampleIndex =
      info.maxSampleIndex === undefined ? s.sampleIndex : Math.max(info.maxSampleIndex, s.sampleIndex);
  }
}

/** False when a sealed segment provably holds nothing inside `q`. */
function mayOverlap(info: SegmentInfo, q: SampleWindowQuery): boolean {
  if (!info.sealed) return true;
  if (info.count === 0) return false;
  if (q.fromTs !== undefined && info.maxTs !== undefined && info.maxTs < q.fromTs) return false;
  if (q.toTs !== undefined && info.minTs !== undefined && info.minTs > q.toTs) return false;
  if (q.fromSample !== undefined || q.toSample !== undefined) {
    if (info.minSampleIndex === undefined || info.maxSampleIndex === undefined) return false;
    if (q.fromSample !== undefined && info.maxSampleIndex < q.fromSample) return false;
    if (q.toSample !== undefined && info.minSampleIndex > q.toSample) return false;
  }
  return true;
}

/** Parses one stored line; undefined when it is not a valid sample. */
function parseLine(line: string): LabelledSample | undefined {
  if (line.length === 0) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  const parsed = labelledSampleSchema.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

/**
 * Splits a segment's text into complete lines; `torn` is the text after the last newline (a partial record),
 * if any.
 */
function splitLines(text: string): { lines: string[]; torn: string } {
  const end = text.lastIndexOf('\n');
  const lines = end < 0 ? [] : text.slice(0, end).split('\n');
  return { lines, torn: text.slice(end + 1) };
}

function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, 'EPERM');
  }
}

/** Opens (creating when needed) the file store in `options.dir`. */
export async function openFileSampleStore(options: FileSampleStoreOptions = {}): Promise<FileSampleStore> {
  const store = new FileSampleStore(options);
  await store.open();
  return store;
}

/** See the module comment. Create with {@link openFileSampleStore}. */
export class FileSampleStore implements LabelledSampleStore {
  readonly kind: string;
  readonly dir: string;
  private readonly segmentRecords: number;
  private readonly maxSamples: number;
  private readonly maxBytes: number;
  private readonly fsyncIntervalMs: number;
  private readonly readOnly: boolean;
  private readonly logger: Logger;
  /** Writer state: every retained segment, oldest first; the last is the active one. */
  private segments: SegmentInfo[] = [];
  private handle: fs.FileHandle | undefined;
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  /** Serialises writes, syncs, rotations and close. */
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  private skipped = 0;
  private lockHeld = false;

  constructor(options: FileSampleStoreOptions = {}) {
    this.dir = path.resolve(options.dir ?? DEFAULT_SAMPLES_DIR);
    this.maxSamples = positiveInt('maxSamples', options.maxSamples ?? 500_000);
    this.segmentRecords = Math.min(
      positiveInt('segmentRecords', options.segmentRecords ?? 10_000),
      this.maxSamples,
    );
    this.maxBytes = positiveInt('maxBytes', options.maxBytes ?? 512 * 1024 * 1024);
    this.fsyncIntervalMs = options.fsyncIntervalMs ?? 1000;
    if (!Number.isInteger(this.fsyncIntervalMs) || this.fsyncIntervalMs < 0)
      throw new RangeError(`fsyncIntervalMs must be a non-negative integer, got ${this.fsyncIntervalMs}`);
    this.readOnly = options.readOnly ?? false;
    this.logger = options.logger ?? silentLogger();
    this.kind = `file ${this.dir}${this.readOnly ? ' (read-only)' : ''}`;
  }

  /** Prepares the directory; the writer takes the lock, repairs a torn tail and opens the active segment. */
  async open(): Promise<void> {
    if (this.readOnly) {
      await fs.access(this.dir).catch((err: unknown) => {
        throw new SampleStoreError(`sample store ${this.dir} cannot be read: ${describeError(err)}`, {
          retriable: true,
          cause: err,
        });
      });
      return;
    }
    await fs.mkdir(this.dir, { recursive: true });
    await this.acquireLock();
    try {
      const ids = await this.listSegmentIds();
      const infos: SegmentInfo[] = [];
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i] as number;
        const last = i === ids.length - 1;
        const meta = await this.readMeta(id);
        if (meta) {
          infos.push({ id, sealed: true, ...meta });
          continue;
        }
        const info = await this.scanSegment(id, last);
        if (!last) {
          // Sealed without a sidecar (a crash during rotation): write it now.
          await this.writeMeta(info);
          info.sealed = true;
        }
        infos.push(info);
      }
      const lastInfo = infos[infos.length - 1];
      // Empty directory, or the last segment was sealed just before a stop: start a new active segment.
      if (!lastInfo || lastInfo.sealed)
        infos.push({ id: (lastInfo?.id ?? 0) + 1, count: 0, bytes: 0, sealed: false });
      this.segments = infos;
      this.handle = await fs.open(path.join(this.dir, segmentFile(this.active.id)), 'a');
      await this.enforceRetention();
      if (this.fsyncIntervalMs > 0) {
        this.timer = setInterval(() => void this.sync().catch(() => undefined), this.fsyncIntervalMs);
        this.timer.unref();
      }
    } catch (err) {
      await this.handle?.close().catch(() => undefined);
      await this.releaseLock();
      throw err;
    }
  }

  private get active(): SegmentInfo {
    return this.segments[this.segments.length - 1] as SegmentInfo;
  }

  private async acquireLock(): Promise<void> {
    const file = path.join(this.dir, LOCK_FILE);
    if (openWriters.has(this.dir))
      throw new SampleStoreError(`sample store ${this.dir} is already open for writing in this process`, {
        retriable: false,
      });
    const body = JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await fs.writeFile(file, body, { flag: 'wx' });
        openWriters.add(this.dir);
        this.lockHeld = true;
        return;
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err;
      }
      let holder: number | undefined;
      try {
        holder = (JSON.parse(await fs.readFile(file, 'utf8')) as { pid?: number }).pid;
      } catch {
        holder = undefined;
      }
      if (typeof holder === 'number' && holder !== process.pid && isPidAlive(holder)) {
        throw new SampleStoreError(
          `sample store ${this.dir} is being written by process ${holder} (${file}); open it with readOnly to read`,
          { retriable: false },
        );
      }
      // A stale lock (its process is gone): take it over.
      this.logger.warn('sample store: removing stale writer lock', { dir: this.dir, pid: holder });
      await fs.rm(file, { force: true });
    }
    throw new SampleStoreError(`could not take the writer lock of ${this.dir}`, { retriable: false });
  }

  private async releaseLock(): Promise<void> {
    if (!this.lockHeld) return;
    this.lockHeld = false;
    openWriters.delete(this.dir);
    await fs.rm(path.join(this.dir, LOCK_FILE), { force: true }).catch(() => undefined);
  }

  private async listSegmentIds(): Promise<number[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
    return names
      .map((n) => SEGMENT_RE.exec(n)?.[1])
      .filter((m): m is string => m !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  private async readMeta(id: number): Promise<Omit<SegmentInfo, 'id' | 'sealed'> | undefined> {
    try {
      const meta = JSON.parse(await fs.readFile(path.join(this.dir, metaFile(id)), 'utf8')) as SegmentMeta;
      if (
        meta.format !== 'driftline-samples-segment/1' ||
        !Number.isInteger(meta.count) ||
        !Number.isInteger(meta.bytes)
      )
        return undefined;
      const { format: _format, ...rest } = meta;
      return rest;
    } catch {
      return undefined;
    }
  }

  private async writeMeta(info: SegmentInfo): Promise<void> {
    const meta: SegmentMeta = {
      format: 'driftline-samples-segment/1',
      count: info.count,
      bytes: info.bytes,
      minTs: info.minTs,
      maxTs: info.maxTs,
      minSampleIndex: info.minSampleIndex,
      maxSampleIndex: info.maxSampleIndex,
    };
    await writeFileAtomic(path.join(this.dir, metaFile(info.id)), `${JSON.stringify(meta)}\n`, {
      mkdir: true,
    });
  }

  /** Reads a segment to rebuild its info; with `repair`, truncates a torn last line. */
  private async scanSegment(id: number, repair: boolean): Promise<SegmentInfo> {
    const file = path.join(this.dir, segmentFile(id));
    const text = await fs.readFile(file, 'utf8');
    const { lines, torn } = splitLines(text);
    const info: SegmentInfo = { id, count: 0, bytes: 0, sealed: false };
    for (const line of lines) {
      const s = parseLine(line);
      if (!s) {
        if (line.length > 0) this.skipped++;
        continue;
      }
      info.count++;
      widen(info, s);
    }
    info.bytes = Buffer.byteLength(text) - Buffer.byteLength(torn);
    if (torn.length > 0 && repair) {
      this.logger.warn('sample store: dropping a torn last record', {
        segment: segmentFile(id),
        bytes: Buffer.byteLength(torn),
      });
      await fs.truncate(file, info.bytes);
      this.skipped++;
    }
    return info;
  }

  async append(samples: readonly LabelledSample[]): Promise<void> {
    if (this.readOnly)
      throw new SampleStoreError(`sample store ${this.dir} is open read-only`, { retriable: false });
    if (this.closed) throw new SampleStoreError(`sample store ${this.dir} is closed`, { retriable: false });
    if (samples.length === 0) return;
    const valid: LabelledSample[] = new Array(samples.length);
    for (let i = 0; i < samples.length; i++) {
      const parsed = labelledSampleSchema.safeParse(samples[i]);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new ValidationError(
          'invalid_sample',
          `labelled sample ${i}: ${issue?.path.join('.') || 'sample'}: ${issue?.message ?? 'invalid'}`,
        );
      }
      valid[i] = parsed.data;
    }
    await this.serial(async () => {
      let start = 0;
      try {
        while (start < valid.length) {
          if (this.active.count >= this.segmentRecords) await this.rotate();
          const room = this.segmentRecords - this.active.count;
          const chunk = valid.slice(start, start + room);
          const text = chunk.map((s) => `${JSON.stringify(s)}\n`).join('');
          // One write per chunk: a reader sees whole lines or a torn last one.
          await this.writeOrRollBack(text);
          this.dirty = true;
          const info = this.active;
          info.count += chunk.length;
          info.bytes += Buffer.byteLength(text);
          for (const s of chunk) widen(info, s);
          start += chunk.length;
          if (info.count >= this.segmentRecords) await this.rotate();
        }
        if (this.fsyncIntervalMs === 0) await this.syncNow();
        await this.enforceRetention();
      } catch (err) {
        if (err instanceof DriftlineError) throw err;
        throw new SampleStoreError(`sample store ${this.dir}: append failed: ${describeError(err)}`, {
          cause: err,
        });
      }
    });
  }

  /**
   * Appends `text` to the active segment; on failure cuts a partial write off so the next record does not
   * join a torn line.
   */
  private async writeOrRollBack(text: string): Promise<void> {
    const handle = this.handle as fs.FileHandle;
    try {
      await handle.write(text);
    } catch (err) {
      await handle.truncate(this.active.bytes).catch(() => undefined);
      throw err;
    }
  }

  /** Seals the active segment and starts the next one. Runs inside {@link serial}. */
  private async rotate(): Promise<void> {
    const info = this.active;
    await this.syncNow();
    await this.handle?.close();
    this.handle = undefined;
    await this.writeMeta(info);
    info.sealed = true;
    const next: SegmentInfo = { id: info.id + 1, count: 0, bytes: 0, sealed: false };
    this.handle = await fs.open(path.join(this.dir, segmentFile(next.id)), 'a');
    this.segments.push(next);
    await fsyncDir(this.dir);
  }

  /** Deletes the oldest sealed segments while the store is over its bounds. Runs inside {@link serial} or at open. */
  private async enforceRetention(): Promise<void> {
    let count = this.segments.reduce((n, s) => n + s.count, 0);
    let bytes = this.segments.reduce((n, s) => n + s.bytes, 0);
    while (this.segments.length > 1 && (count > this.maxSamples || bytes > this.maxBytes)) {
      const oldest = this.segments.shift() as SegmentInfo;
      count -= oldest.count;
      bytes -= oldest.bytes;
      // Sidecar first: a segment without a sidecar is rescanned, never mistaken for an empty one.
      await fs.rm(path.join(this.dir, metaFile(oldest.id)), { force: true });
      await fs.rm(path.join(this.dir, segmentFile(oldest.id)), { force: true });
      this.logger.debug('sample store: deleted oldest segment', {
        segment: segmentFile(oldest.id),
        samples: oldest.count,
        bytes: oldest.bytes,
      });
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async syncNow(): Promise<void> {
    if (!this.dirty || !this.handle) return;
    this.dirty = false;
    await this.handle.datasync();
  }

  /** Flushes written samples to disk now (the timer does it every `fsyncIntervalMs`). */
  async sync(): Promise<void> {
    if (this.readOnly || this.closed) return;
    await this.serial(async () => {
      try {
        await this.syncNow();
      } catch (err) {
        this.dirty = true;
        this.logger.error('sample store: fsync failed', { dir: this.dir, err: describeError(err) });
        throw err;
      }
    });
  }

  /** Segments to read: the writer's own list, or (read-only) what is on disk now. */
  private async currentSegments(): Promise<SegmentInfo[]> {
    if (!this.readOnly) return this.segments.map((s) => ({ ...s }));
    const ids = await this.listSegmentIds();
    const out: SegmentInfo[] = [];
    for (const id of ids) {
      const meta = await this.readMeta(id);
      out.push(meta ? { id, sealed: true, ...meta } : { id, count: 0, bytes: 0, sealed: false });
    }
    return out;
  }

  /** Lines of a segment; undefined when it vanished (deleted by retention meanwhile). */
  private async readSegment(
    id: number,
  ): Promise<{ lines: string[]; torn: string; bytes: number } | undefined> {
    let text: string;
    try {
      text = await fs.readFile(path.join(this.dir, segmentFile(id)), 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw new SampleStoreError(
        `sample store ${this.dir}: cannot read ${segmentFile(id)}: ${describeError(err)}`,
        { cause: err },
      );
    }
    return { ...splitLines(text), bytes: Buffer.byteLength(text) };
  }

  async readWindow(query: SampleWindowQuery = {}): Promise<LabelledSample[]> {
    const limit = query.limit ?? Number.POSITIVE_INFINITY;
    if (limit <= 0) return [];
    const machines = query.machineIds ? new Set(query.machineIds) : undefined;
    const segments = await this.currentSegments();
    const seen = new Set<string>();
    const newestFirst: LabelledSample[][] = [];
    let total = 0;
    // Newest segment first so a `limit` stops reading early.
    for (let i = segments.length - 1; i >= 0 && total < limit; i--) {
      const info = segments[i] as SegmentInfo;
      if (!mayOverlap(info, query)) continue;
      // Parsing a full segment takes tens of ms: let timers and health checks run between segments.
      if (newestFirst.length > 0) await new Promise<void>((r) => setImmediate(r));
      const content = await this.readSegment(info.id);
      if (!content) continue;
      const picked: LabelledSample[] = [];
      for (let j = content.lines.length - 1; j >= 0 && total < limit; j--) {
        const line = content.lines[j] as string;
        const s = parseLine(line);
        if (!s) {
          if (line.length > 0) this.skipped++;
          continue;
        }
        if (!matchesWindow(s, query, machines)) continue;
        const key = sampleKey(s);
        if (seen.has(key)) continue;
        seen.add(key);
        picked.push(s);
        total++;
      }
      newestFirst.push(picked);
    }
    const out: LabelledSample[] = [];
    for (let i = newestFirst.length - 1; i >= 0; i--) {
      const picked = newestFirst[i] as LabelledSample[];
      for (let j = picked.length - 1; j >= 0; j--) out.push(picked[j] as LabelledSample);
    }
    return out;
  }

  async stats(): Promise<SampleStoreStats> {
    const segments = await this.currentSegments();
    if (this.readOnly) {
      // Unsealed segments carry no sidecar: count them by reading.
      for (const info of segments) {
        if (info.sealed) continue;
        const content = await this.readSegment(info.id);
        if (!content) continue;
        for (const line of content.lines) {
          const s = parseLine(line);
          if (!s) continue;
          info.count++;
          widen(info, s);
        }
        info.bytes = content.bytes;
      }
    }
    const out: SampleStoreStats = {
      samples: 0,
      segments: segments.length,
      bytes: 0,
      skippedLines: this.skipped,
    };
    for (const s of segments) {
      out.samples += s.count;
      out.bytes += s.bytes;
      if (s.minTs !== undefined) out.oldestTs = Math.min(out.oldestTs ?? s.minTs, s.minTs);
      if (s.maxTs !== undefined) out.newestTs = Math.max(out.newestTs ?? s.maxTs, s.maxTs);
      if (s.minSampleIndex !== undefined)
        out.minSampleIndex = Math.min(out.minSampleIndex ?? s.minSampleIndex, s.minSampleIndex);
      if (s.maxSampleIndex !== undefined)
        out.maxSampleIndex = Math.max(out.maxSampleIndex ?? s.maxSampleIndex, s.maxSampleIndex);
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.readOnly) return;
    await this.serial(async () => {
      try {
        await this.syncNow();
      } finally {
        await this.handle?.close();
        this.handle = undefined;
        await this.releaseLock();
      }
    });
  }
}
