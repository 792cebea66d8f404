import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectoryRegistry } from '../../../common/registry/directory.ts';
import { runRegistryCli } from '../../../retrainer/src/registry-cli.ts';

const MODEL = 'driftline-efficiency';

async function makeArtifact(dir: string, seed: number): Promise<string> {
  await mkdir(dir, { recursive: true });
  const table: Record<string, { sha256: string; bytes: number }> = {};
  for (const [name, data] of Object.entries({
    'model.json': `{"seed":${seed}}`,
    'weights.bin': `w${seed}`,
    'reference.json': '{}',
  })) {
    await writeFile(path.join(dir, name), data);
    table[name] = { sha256: createHash('sha256').update(data).digest('hex'), bytes: Buffer.byteLength(data) };
  }
  await writeFile(
    path.join(dir, 'metadata.json'),
    JSON.stringify({ format: 'driftline-model/1', version: 'candidate', files: table }),
  );
  return dir;
}

describe('registry CLI', () => {
  let tmp: string;
  let root: string;
  const out: string[] = [];
  const err: string[] = [];
  const run = (...argv: string[]): Promise<number> => {
    out.length = 0;
    err.length = 0;
    return runRegistryCli(argv, {
      out: (l) => out.push(l),
      err: (l) => err.push(l),
      env: { REGISTRY_DIR: root, LOG_LEVEL: 'error' },
    });
  };

  beforeEach(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'driftline-cli-'));
    root = path.join(tmp, 'registry');
    const registry = new DirectoryRegistry({ root });
    for (let i = 1; i <= 2; i++) {
      const v = await registry.registerVersion(MODEL, await makeArtifact(path.join(tmp, `a${i}`), i), {
        correlationId: `c${i}`,
        metrics: { accuracy: 0.8 + i / 100 },
      });
      await registry.setChampion(MODEL, v.version, { by: 'retrainer', reason: `promote v${i}` });
    }
  });
  afterEach(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('lists versions, shows the champion and the history', async () => {
    expect(await run('list')).toBe(0);
    expect(out[0]).toBe(`registry: directory ${root}   model: ${MODEL}`);
    expect(out.slice(1).map((l) => l.split(/\s+/).slice(0, 2).join(' '))).toEqual([
      'v1 retired',
      'v2 champion',
    ]);
    expect(await run('champion', '--json')).toBe(0);
    expect(JSON.parse(out.join('\n'))).toMatchObject({ version: '2', status: 'champion' });
    expect(await run('history')).toBe(0);
    expect(out[2]).toContain('v1 → v2');
    expect(out[2]).toContain('by retrainer: promote v2');
  });

  it('rolls back, prints the change, and refuses when there is nothing to go back to', async () => {
    expect(await run('rollback', '--reason', 'live accuracy dropped', '--by', 'cli:alice')).toBe(0);
    expect(out[1]).toBe(`rolled back ${MODEL}: champion v2 → v1 (by cli:alice: live accuracy dropped)`);
    expect(await run('history', '--json')).toBe(0);
    expect(JSON.parse(out.join('\n')).at(-1)).toMatchObject({
      action: 'rollback',
      from: '2',
      to: '1',
      by: 'cli:alice',
      reason: 'live accuracy dropped',
    });
    expect(await run('rollback', '--reason', 'again')).toBe(1);
    expect(err.join('\n')).toContain('REGISTRY_NO_PREVIOUS');
  });

  it('reports usage errors with exit code 2', async () => {
    expect(await run()).toBe(2);
    expect(await run('rollback')).toBe(2);
    expect(err[0]).toContain('--reason');
    expect(await run('promote')).toBe(2);
    expect(await run('list', '--bogus')).toBe(2);
    expect(await run('--help')).toBe(0);
    expect(await run('champion', '--model', 'unknown-model')).toBe(1);
  });
});
