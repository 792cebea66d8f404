import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type { Label, Telemetry } from '../../common/schema/telemetry.ts';
import type { GeneratedSample } from '../../common/scenario/generator.ts';

/**
 * The offline form of a stream: one JSON object per line,
 * `{"telemetry": {...}, "label": {...}, "phase": "name"}`.
 */
export interface JsonlRecord {
  telemetry: Telemetry;
  label: Label;
  phase: string;
}

/** One line (without the newline). */
export function formatJsonlLine(sample: GeneratedSample): string {
  const record: JsonlRecord = { telemetry: sample.telemetry, label: sample.label, phase: sample.phaseName };
  return JSON.stringify(record);
}

/** Lines are written in chunks of about this many characters. */
const CHUNK_CHARS = 1 << 20;

/**
 * Writes samples to `target` (a file path, or a writable stream such as
 * stdout), at most `maxSamples` of them; resolves with the count once flushed.
 */
export async function writeJsonl(
  samples: Iterable<GeneratedSample>,
  target: string | Writable,
  options: { maxSamples?: number } = {},
): Promise<{ samples: number; bytes: number }> {
  const max = options.maxSamples ?? Number.POSITIVE_INFINITY;
  const out = typeof target === 'string' ? createWriteStream(target) : target;
  const failed = new Promise<never>((_, reject) => out.once('error', reject));
  failed.catch(() => undefined);
  let count = 0;
  let bytes = 0;
  let chunk = '';
  const flush = async (): Promise<void> => {
    bytes += Buffer.byteLength(chunk);
    const ok = out.write(chunk);
    chunk = '';
    if (!ok) await Promise.race([once(out, 'drain'), failed]);
  };
  if (max > 0) {
    for (const sample of samples) {
      chunk += `${formatJsonlLine(sample)}\n`;
      if (chunk.length >= CHUNK_CHARS) await flush();
      if (++count >= max) break;
    }
  }
  if (chunk.length > 0) await flush();
  if (typeof target === 'string') {
    out.end();
    await Promise.race([once(out, 'finish'), failed]);
  }
  return { samples: count, bytes };
}
