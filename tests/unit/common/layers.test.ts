import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { listFiles, runtimeImports } from '../../../scripts/check-image-imports.ts';

/**
 * The layers of common/ (common/README.md): a folder imports only from the
 * layers below its own, and from itself. Runtime imports only: `import type`
 * is erased.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['errors', 'paths'],
  ['version', 'util', 'schema', 'stats'],
  ['config'],
  ['logging', 'events', 'scenario', 'mqtt', 'http', 'security'],
  ['model', 'mlflow', 'bus', 'drift', 'deadletter'],
  ['registry', 'samples', 'eval', 'main'],
];

/** `common/drift/x.ts` → `drift`; `common/errors.ts` → `errors`. */
function unit(file: string): string {
  const parts = file.split('/');
  return parts.length > 2 ? (parts[1] as string) : path.basename(file, '.ts');
}

function layerOf(u: string): number {
  const i = LAYERS.findIndex((l) => l.includes(u));
  if (i < 0) throw new Error(`common/${u} is in no layer of common/README.md`);
  return i;
}

describe('common/ layers', () => {
  it('every runtime import goes to a lower layer or stays in its folder', () => {
    const root = process.cwd();
    const files = listFiles(root).filter((f) => f.startsWith('common/') && f.endsWith('.ts'));
    const upward: string[] = [];
    for (const file of files) {
      const from = unit(file);
      for (const spec of runtimeImports(file, readFileSync(path.join(root, file), 'utf8')).relative) {
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
        if (!target.startsWith('common/') || !target.endsWith('.ts')) continue;
        const to = unit(target);
        if (to !== from && layerOf(to) >= layerOf(from)) upward.push(`${file} → ${target}`);
      }
    }
    expect(upward).toEqual([]);
    // Every folder and top-level module has its layer.
    for (const file of files) layerOf(unit(file));
  });
});
