/**
 * `npm run bench`: runs every benchmark module under bench/ and prints its
 * figures as JSON. Speed and memory goals are reported here as figures, never
 * asserted in tests. `npm run bench -- ks drift` runs only the named ones.
 */
import { readdir } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const files = (await readdir(here)).filter((f) => f.endsWith('.ts') && f !== 'run.ts').sort();
const results: Record<string, unknown> = {};
for (const file of files) {
  const name = file.replace(/\.ts$/, '');
  if (only.length > 0 && !only.includes(name)) continue;
  const mod = (await import(pathToFileURL(path.join(here, file)).href)) as {
    run?: () => Promise<Record<string, unknown>>;
  };
  if (typeof mod.run !== 'function') continue;
  const started = performance.now();
  process.stderr.write(`bench ${name}…\n`);
  try {
    results[name] = await mod.run();
  } catch (err) {
    results[name] = { error: (err as Error).message };
    process.exitCode = 1;
  }
  process.stderr.write(`bench ${name} done in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
}
results.machine = {
  node: process.version,
  platform: `${process.platform}/${process.arch}`,
  at: new Date().toISOString(),
};
console.log(JSON.stringify(results, null, 2));
