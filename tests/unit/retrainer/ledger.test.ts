import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RequestLedger, type RequestRecord } from '../../../retrainer/src/ledger.ts';
import { makeRequest } from '../../../retrainer/src/testing/fakes.ts';

const rec = (id: string, over: Partial<RequestRecord> = {}): RequestRecord => ({
  requestId: id,
  correlationId: `c-${id}`,
  modelName: 'm',
  championVersion: '1',
  status: 'queued',
  receivedAt: `2026-01-01T00:00:0${id.length % 10}.000Z`,
  updatedAt: new Date().toISOString(),
  attempts: 0,
  ...over,
});

describe('request ledger', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'driftline-ledger-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('persists records and outcomes across reopen; pending ones keep their request', async () => {
    const a = await RequestLedger.open(dir);
    const request = makeRequest({ requestId: 'a'.repeat(32) });
    await a.put(rec('a'.repeat(32), { request }));
    await a.put(rec('b'.repeat(32)));
    await a.update('b'.repeat(32), { status: 'promoted', version: '3', reason: 'better' });
    const b = await RequestLedger.open(dir);
    expect(b.get('a'.repeat(32))?.request).toEqual(request);
    expect(b.get('b'.repeat(32))).toMatchObject({ status: 'promoted', version: '3' });
    expect(b.get('b'.repeat(32))?.request).toBeUndefined();
    expect(b.pending().map((r) => r.requestId)).toEqual(['a'.repeat(32)]);
    // Written atomically: no temp files left behind.
    expect(await fs.readdir(dir)).toEqual(['requests.json']);
  });

  it('prunes the oldest final records beyond the limit, never pending ones', async () => {
    const l = await RequestLedger.open(dir, { maxFinished: 2 });
    await l.put(rec('p'.repeat(16)));
    for (let i = 0; i < 4; i++)
      await l.put(
        rec(String(i).repeat(16), { status: 'rejected', updatedAt: `2026-01-0${i + 1}T00:00:00.000Z` }),
      );
    expect(
      l
        .all()
        .map((r) => r.requestId)
        .sort(),
    ).toEqual(['2'.repeat(16), '3'.repeat(16), 'p'.repeat(16)]);
  });

  it('sets an unreadable state file aside and starts empty', async () => {
    await fs.writeFile(
      path.join(dir, 'requests.json'),
      '{"format": "driftline-retrainer-requests/1", "requests": [',
    );
    const l = await RequestLedger.open(dir);
    expect(l.all()).toEqual([]);
    expect((await fs.readdir(dir)).some((f) => f.startsWith('requests.json.corrupt-'))).toBe(true);
  });

  it('undoes the in-memory change when the write fails, so a redelivery is not taken for a handled request', async () => {
    const state = path.join(dir, 'state');
    const l = await RequestLedger.open(state);
    // The state directory's place is taken by a file: every write fails.
    await fs.writeFile(state, 'x');
    await expect(l.put(rec('c'.repeat(32)))).rejects.toMatchObject({
      code: 'RETRAINER_STATE',
      retriable: true,
    });
    expect(l.get('c'.repeat(32))).toBeUndefined();
  });
});
