import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isRetriable } from '../../../../common/errors.ts';
import { DirectoryRegistry } from '../../../../common/registry/directory.ts';
import { RegistryError, storageError } from '../../../../common/registry/errors.ts';
import { makeFakeArtifact } from '../../../helpers/dashboard/stack.ts';

/**
 * Promise: the directory registry reports storage it cannot write as a typed RegistryError —
 * REGISTRY_STORAGE_FULL (retriable) or REGISTRY_STORAGE_DENIED (not) — naming what it was doing and where.
 * The real faults (EACCES, EFBIG) are in tests/faults/model-dir-unwritable.test.ts.
 */
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const errno = (code: string): NodeJS.ErrnoException =>
  Object.assign(new Error(`${code}: failed, write`), { code });

describe('registry storage errors', () => {
  it('maps full-disk codes to a retriable REGISTRY_STORAGE_FULL, permission codes to REGISTRY_STORAGE_DENIED', () => {
    for (const code of ['ENOSPC', 'EDQUOT', 'EFBIG']) {
      const e = storageError(errno(code), 'cannot register', '/r');
      expect(e).toBeInstanceOf(RegistryError);
      expect(e).toMatchObject({ code: 'REGISTRY_STORAGE_FULL', retriable: true });
      expect((e as Error).message).toMatch(/^cannot register: the model registry \/r is full \(/);
    }
    for (const code of ['EACCES', 'EPERM', 'EROFS', 'ENOTDIR']) {
      const e = storageError(errno(code), 'cannot promote', '/r');
      expect(e).toMatchObject({ code: 'REGISTRY_STORAGE_DENIED', retriable: false });
      expect(isRetriable(e)).toBe(false);
    }
    const other = errno('EIO');
    expect(storageError(other, 'x', '/r')).toBe(other);
  });

  it('reports a registry root below a regular file (ENOTDIR) as REGISTRY_STORAGE_DENIED', async () => {
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'driftline-storage-'));
    dirs.push(tmp);
    await writeFile(path.join(tmp, 'file'), 'not a directory');
    const registry = new DirectoryRegistry({ root: path.join(tmp, 'file', 'registry') });
    const artifact = await makeFakeArtifact(path.join(tmp, 'artifact'), 1);
    const err = await registry
      .registerVersion('m', artifact, { correlationId: 'c', metrics: {} })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'RegistryError', code: 'REGISTRY_STORAGE_DENIED', retriable: false });
    expect((err as Error).message).toContain('ENOTDIR');
    await expect(registry.setChampion('m', '1', { by: 't', reason: 't' })).rejects.toMatchObject({
      code: 'REGISTRY_STORAGE_DENIED',
    });
  });
});
