import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { RetrainRequest } from '../../common/events/schemas.ts';
import { DriftlineError, describeError } from '../../common/errors.ts';
import { silentLogger, type Logger } from '../../common/logging/logger.ts';
import { isErrno, writeFileAtomic } from '../../common/util/atomic-file.ts';

/**
 * The retrainer's durable record of retrain requests, keyed by `requestId`
 * (the idempotency key): `<stateDir>/requests.json`, rewritten atomically
 * (temp file, fsync, rename) after every change.
 *
 * A request is recorded as `queued` before its bus message is acknowledged,
 * so a restart resumes it; once it has a final status, a redelivery (or the
 * same request sent again) is recognised and not trained again, also after a
 * restart. Final records beyond `maxFinished` are pruned, oldest first.
 */

/** Where a request stands. `queued`/`waiting-for-data`/`running` are resumed after a restart; the rest are final. */
export type RequestStatus =
  | 'queued'
  | 'waiting-for-data'
  | 'running'
  | 'promoted'
  | 'rejected'
  | 'failed'
  | 'timed-out'
  | 'insufficient-data'
  | 'coalesced';

export const FINAL_STATUSES: readonly RequestStatus[] = [
  'promoted',
  'rejected',
  'failed',
  'timed-out',
  'insufficient-data',
  'coalesced',
];

/** True for a status that ends a request. */
export function isFinal(status: RequestStatus): boolean {
  return FINAL_STATUSES.includes(status);
}

/** One handled request. */
export interface RequestRecord {
  /** Idempotency key of the request. */
  requestId: string;
  /** Correlation id of the drift episode that raised it. */
  correlationId: string;
  /** Model to retrain. */
  modelName: string;
  /** Champion the drift was detected against (the episode). */
  championVersion: string;
  /** Where it stands. */
  status: RequestStatus;
  /** ISO time it was first received. */
  receivedAt: string;
  /** ISO time of the last change. */
  updatedAt: string;
  /** Training attempts started (a not-enough-data wait counts one). */
  attempts: number;
  /** The request itself while it is not final (needed to resume it). */
  request?: RetrainRequest;
  /** For `coalesced`: the request whose training covers it. */
  coalescedInto?: string;
  /** Registered challenger version, once there is one. */
  version?: string;
  /** Why it ended as it did. */
  reason?: string;
}

interface LedgerFile {
  format: 'driftline-retrainer-requests/1';
  requests: RequestRecord[];
}

/** The state file could not be written (disk full, permissions). Retriable: the bus redelivers the request. */
export class LedgerError extends DriftlineError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'RETRAINER_STATE', retriable: true, cause });
  }
}

/** Options of {@link RequestLedger.open}. */
export interface LedgerOptions {
  /** Final records kept. Default 1000. */
  maxFinished?: number;
  /** Logs an unreadable state file. */
  logger?: Logger;
}

/** See the module comment. */
export class RequestLedger {
  readonly file: string;
  private readonly records = new Map<string, RequestRecord>();
  private readonly maxFinished: number;
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(file: string, maxFinished: number) {
    this.file = file;
    this.maxFinished = maxFinished;
  }

  /**
   * Loads `<dir>/requests.json` (an unreadable file is set aside as `requests.json.corrupt-<time>` and the
   * ledger starts empty).
   */
  static async open(dir: string, options: LedgerOptions = {}): Promise<RequestLedger> {
    const logger = options.logger ?? silentLogger();
    const ledger = new RequestLedger(path.resolve(dir, 'requests.json'), options.maxFinished ?? 1000);
    let text: string | undefined;
    try {
      text = await fs.readFile(ledger.file, 'utf8');
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
    if (text !== undefined) {
      try {
        const parsed = JSON.parse(text) as LedgerFile;
        if (parsed.format !== 'driftline-retrainer-requests/1' || !Array.isArray(parsed.requests))
          throw new Error(`unknown format ${JSON.stringify(parsed.format)}`);
        for (const r of parsed.requests)
          if (r && typeof r.requestId === 'string') ledger.records.set(r.requestId, r);
      } catch (err) {
        const aside = `${ledger.file}.corrupt-${Date.now()}`;
        logger.error('retrainer state file unreadable; starting with an empty request ledger', {
          file: ledger.file,
          movedTo: aside,
          err: describeError(err),
        });
        await fs.rename(ledger.file, aside).catch(() => undefined);
      }
    }
    return ledger;
  }

  get(requestId: string): RequestRecord | undefined {
    const r = this.records.get(requestId);
    return r ? { ...r } : undefined;
  }

  /** Records not final yet, oldest first (resumed after a restart). */
  pending(): RequestRecord[] {
    return [...this.records.values()]
      .filter((r) => !isFinal(r.status))
      .sort((a, b) => (a.receivedAt < b.receivedAt ? -1 : a.receivedAt > b.receivedAt ? 1 : 0));
  }

  /** Every record, oldest first. */
  all(): RequestRecord[] {
    return [...this.records.values()].map((r) => ({ ...r }));
  }

  /**
   * Inserts or replaces a record and persists the ledger; resolves once it is
   * on disk. When the write fails the in-memory change is undone (so a
   * redelivered request is not mistaken for a handled one) and the error is
   * rethrown as a retriable {@link LedgerError}.
   */
  async put(record: RequestRecord): Promise<void> {
    const stored: RequestRecord = { ...record };
    if (isFinal(stored.status)) delete stored.request;
    const previous = this.records.get(stored.requestId);
    this.records.delete(stored.requestId);
    this.records.set(stored.requestId, stored);
    this.prune();
    try {
      await this.persist();
    } catch (err) {
      if (this.records.get(stored.requestId) === stored) {
        if (previous) this.records.set(stored.requestId, previous);
        else this.records.delete(stored.requestId);
      }
      throw new LedgerError(`cannot write the retrainer state ${this.file}: ${describeError(err)}`, err);
    }
  }

  /** Changes fields of an existing record and persists. */
  async update(
    requestId: string,
    changes: Partial<Omit<RequestRecord, 'requestId'>>,
  ): Promise<RequestRecord> {
    const current = this.records.get(requestId);
    if (!current) throw new Error(`no ledger record for request ${requestId}`);
    const next = { ...current, ...changes, updatedAt: changes.updatedAt ?? new Date().toISOString() };
    await this.put(next);
    return { ...next };
  }

  private prune(): void {
    const finished = [...this.records.values()].filter((r) => isFinal(r.status));
    let excess = finished.length - this.maxFinished;
    if (excess <= 0) return;
    finished.sort((a, b) => (a.updatedAt < b.updatedAt ? -1 : a.updatedAt > b.updatedAt ? 1 : 0));
    for (const r of finished) {
      if (excess-- <= 0) break;
      this.records.delete(r.requestId);
    }
  }

  /** Writes the current state; writes are serialised, and each writes the latest state. */
  private persist(): Promise<void> {
    const run = this.chain.then(async () => {
      const body: LedgerFile = {
        format: 'driftline-retrainer-requests/1',
        requests: [...this.records.values()],
      };
      await writeFileAtomic(this.file, `${JSON.stringify(body, null, 1)}\n`, { mkdir: true });
    });
    this.chain = run.catch(() => undefined);
    return run;
  }
}
