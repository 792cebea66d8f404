import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../../common/errors.ts';
import { loadTf, TfBackendError, wasmDistDir } from '../../../../common/model/tf.ts';
import { existsSync } from 'node:fs';
import { createRequire, findSourceMap } from 'node:module';
import path from 'node:path';

async function tfjsNodeInstalled(): Promise<boolean> {
  const spec = '@tensorflow/tfjs-node';
  try {
    await import(spec);
    return true;
  } catch {
    return false;
  }
}

describe('loadTf', () => {
  it('rejects an invalid TF_BACKEND with a ConfigError', async () => {
    await expect(loadTf(undefined, { backend: 'gpu' as 'cpu' })).rejects.toBeInstanceOf(ConfigError);
  });

  it('points the wasm backend at the local dist/ folder holding the binaries', () => {
    const dir = wasmDistDir();
    expect(dir.endsWith(path.sep)).toBe(true);
    expect(existsSync(path.join(dir, 'tfjs-backend-wasm.wasm'))).toBe(true);
    expect(existsSync(path.join(dir, 'tfjs-backend-wasm-simd.wasm'))).toBe(true);
  });

  it('runs on wasm when tfjs-node is absent (tensorflow when present), logs it, and is a singleton', async () => {
    const lines: string[] = [];
    const logger = {
      info: (m: string) => lines.push(m),
      warn: () => undefined,
      debug: () => undefined,
    } as unknown as Parameters<typeof loadTf>[0];
    const expected = (await tfjsNodeInstalled()) ? 'tensorflow' : 'wasm';
    process.setSourceMapsEnabled(true); // as tsx sets it in every service
    const a = await loadTf(logger, { backend: 'auto' });
    // tfjs' bundles load without their multi-megabyte source maps; the process keeps source maps on.
    expect(process.sourceMapsEnabled).toBe(true);
    const requireHere = createRequire(import.meta.url);
    expect(findSourceMap(requireHere.resolve('@tensorflow/tfjs-core/dist/tf-core.node.js'))).toBeUndefined();
    expect(
      findSourceMap(requireHere.resolve('@tensorflow/tfjs-layers/dist/tf-layers.node.js')),
    ).toBeUndefined();
    expect(a.backend).toBe(expected);
    expect(a.tf.getBackend()).toBe(expected);
    if (expected === 'wasm') {
      // tfjs-core and tfjs-layers only: the bundle's converter, data and WebGL packages are not loaded.
      const loaded = Object.keys(requireHere.cache);
      expect(loaded.some((f) => f.includes(`${path.sep}tfjs-layers${path.sep}`))).toBe(true);
      for (const pkg of ['tfjs-converter', 'tfjs-data', 'tfjs-backend-webgl'])
        expect(loaded.filter((f) => f.includes(`${path.sep}${pkg}${path.sep}`))).toEqual([]);
      expect(typeof a.tf.sequential).toBe('function');
      expect(typeof a.tf.io.fromMemory).toBe('function');
    }
    expect(lines).toContain(`tf backend: ${expected}`);
    const b = await loadTf();
    expect(b.tf).toBe(a.tf);
    const sum = a.tf.tidy(() => a.tf.add(a.tf.tensor1d([1, 2]), a.tf.tensor1d([3, 4])).dataSync());
    expect(Array.from(sum)).toEqual([4, 6]);
    // Once running, a different forced backend is refused rather than silently switched.
    await expect(loadTf(undefined, { backend: expected === 'wasm' ? 'cpu' : 'wasm' })).rejects.toBeInstanceOf(
      TfBackendError,
    );
    await expect(loadTf(undefined, { backend: expected })).resolves.toBe(a);
  });
});
