import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import winston from 'winston';
import Transport from 'winston-transport';
import { silentLogger } from '../../../../common/logging/logger.ts';
import { createSigner, createTrust, generateSigningKey } from '../../../../common/model/signature.ts';
import { ensureChampion } from '../../../../common/registry/bootstrap.ts';
import { DirectoryRegistry } from '../../../../common/registry/directory.ts';
import { signLegacyChampions } from '../../../../common/registry/sign-version.ts';
import { makeFakeArtifact } from '../../../helpers/dashboard/stack.ts';

/**
 * Promise (upgrade to registry-version signatures): champions promoted before versions were signed — their
 * metadata signed by the key, no version signature — are signed for their own version by the bootstrap
 * (`ensureChampion`: `npm start`, the cluster's bootstrap-champion Job), so the edge keeps serving them and
 * rollbacks to them work; an older artifact registered again (same checksum as an earlier version) is not
 * signed, nor a version that never was champion, nor a model of another key.
 */
const MODEL = 'driftline-efficiency';
const key = createSigner(generateSigningKey());
const trust = createTrust([key.publicKey]);
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * A registry of the era before version signatures: v1, v2 (this key) and v3 (another key) champions in turn,
 * then v2 again; v4 (this key) a candidate never promoted.
 */
async function legacyRegistry(): Promise<DirectoryRegistry> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'driftline-upgrade-'));
  const registry = new DirectoryRegistry({ root: path.join(tmp, 'registry') });
  cleanups.push(
    () => rm(tmp, { recursive: true, force: true }),
    () => registry.close(),
  );
  const audit = { by: 'retrainer', reason: 'test' };
  for (const seed of [1, 2, 4]) {
    const dir = await makeFakeArtifact(path.join(tmp, `a${seed}`), seed);
    if (seed !== 4) await key.signArtifact(dir);
    else await createSigner(generateSigningKey()).signArtifact(dir);
    const v = await registry.registerVersion(MODEL, dir, { correlationId: `c${seed}`, metrics: {} });
    if (seed !== 4) await registry.setChampion(MODEL, v.version, audit);
  }
  await registry.setChampion(MODEL, '3', audit);
  await registry.setChampion(MODEL, '2', audit);
  const v4 = await makeFakeArtifact(path.join(tmp, 'a5'), 5);
  await key.signArtifact(v4);
  await registry.registerVersion(MODEL, v4, { correlationId: 'c5', metrics: {} });
  return registry;
}

const verifies = async (registry: DirectoryRegistry, version: string): Promise<boolean> => {
  const v = await registry.getVersion(MODEL, version);
  try {
    trust.verifyVersion({ name: MODEL, version, checksum: v?.checksum ?? '' }, v?.versionSignature);
    return true;
  } catch {
    return false;
  }
};

describe('upgrade to registry-version signatures', () => {
  it('signs the champions of before, not a replay, not another key, not a candidate', async () => {
    const registry = await legacyRegistry();
    // The replay of the era: v1's artifact registered again as v5 and made champion.
    const v5 = await registry.registerVersion(MODEL, await registry.fetchArtifact(MODEL, '1'), {
      correlationId: 'replay',
      metrics: {},
    });
    await registry.setChampion(MODEL, v5.version, { by: 'someone', reason: 'replay' });
    const result = await signLegacyChampions(registry, key, MODEL, silentLogger());
    expect(result).toEqual({ signed: ['1', '2'], refused: ['5'] });
    expect(await Promise.all(['1', '2', '3', '4', '5'].map((v) => verifies(registry, v)))).toEqual([
      true,
      true,
      false,
      false,
      false,
    ]);
    // Idempotent: a second pass signs nothing again.
    expect(await signLegacyChampions(registry, key, MODEL, silentLogger())).toEqual({
      signed: [],
      refused: ['5'],
    });
  });

  it('ensureChampion keeps a legacy champion and signs it for its version (no retraining)', async () => {
    const registry = await legacyRegistry();
    const champion = await ensureChampion(registry, MODEL, '/nonexistent/bootstrap', silentLogger(), key);
    expect(champion.version).toBe('2');
    expect(await verifies(registry, '2')).toBe(true);
    expect(await verifies(registry, '1')).toBe(true); // a rollback to it still works
  });

  it('ensureChampion refuses to sign a replayed champion (and says so) when it may not replace it', async () => {
    const registry = await legacyRegistry();
    const v5 = await registry.registerVersion(MODEL, await registry.fetchArtifact(MODEL, '1'), {
      correlationId: 'replay',
      metrics: {},
    });
    await registry.setChampion(MODEL, v5.version, { by: 'someone', reason: 'replay' });
    const errors: string[] = [];
    const sink = new (class extends Transport {
      override log(info: { level: string; message: string }, next: () => void): void {
        if (info.level === 'error') errors.push(info.message);
        next();
      }
    })();
    const logger = winston.createLogger({ transports: [sink] });
    const champion = await ensureChampion(registry, MODEL, '/nonexistent/bootstrap', logger, key, {
      replaceUnsigned: false,
    });
    expect(champion.version).toBe('5');
    expect(await verifies(registry, '5')).toBe(false);
    expect(errors.join('\n')).toMatch(/v5 is the artifact of v1 registered again/);
  });
});
