import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The project root: the nearest folder above this module whose package.json is Driftline's. The
 * same answer from the TypeScript sources (`common/paths.ts`) and from a bundle of them
 * (`dist/<service>.mjs`, scripts/build.mjs), where `import.meta.url` names the bundle: modules that
 * read the repository's files (package.json, scenarios/, the dashboard's public/) resolve them here,
 * never relative to their own file.
 */
export function findProjectRoot(from: string = path.dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest) && isDriftline(manifest)) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no Driftline package.json above ${from}`);
  }
}

function isDriftline(manifest: string): boolean {
  try {
    return (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'driftline';
  } catch {
    return false;
  }
}

/** {@link findProjectRoot} of this installation. */
export const PROJECT_ROOT: string = findProjectRoot();

/** A path under the project root, from its segments (`projectPath('scenarios', 'stationary.json')`). */
export function projectPath(...segments: string[]): string {
  return path.join(PROJECT_ROOT, ...segments);
}
