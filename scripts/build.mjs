#!/usr/bin/env node
// Builds each long-running service into one ES module under dist/ (esbuild; packages stay external in
// node_modules), so the services run on plain `node` instead of `node --import tsx`: no TypeScript
// loader thread and no transformed sources held in memory. The edge worker idles at ~90 MB RSS built
// against ~145 MB under tsx (BENCHMARKS.md, "Built services"). Plain JavaScript on purpose: it runs in
// the images and on a fresh checkout before anything else.
//
//   node scripts/build.mjs              every bundle (npm run build)
//   node scripts/build.mjs --outdir dist/x …          elsewhere inside the repository (tests)
//   node scripts/build.mjs edge-inference retrainer   only these, by name or entry module (each image
//                                                    builds its own: edge-inference/src/main.ts)
//
// Each bundle comes with a source map (dist/<name>.mjs.map); `node --enable-source-maps` maps stack
// traces back to the TypeScript. Modules find the repository's files (package.json, scenarios/, the
// dashboard's public/) from common/paths.ts, which works from the sources and from dist/ alike.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Bundle name → entry module. `train-worker` is the retrainer's training thread (retrainer/src/trainer.ts). */
export const BUNDLES = {
  broker: 'broker/src/main.ts',
  'kafka-bridge': 'broker/src/kafka-bridge-main.ts',
  'edge-inference': 'edge-inference/src/main.ts',
  retrainer: 'retrainer/src/main.ts',
  'train-worker': 'retrainer/src/train-worker.ts',
  dashboard: 'dashboard/src/main.ts',
  simulator: 'simulator/src/cli.ts',
  driftline: 'bin/driftline.ts',
};

/**
 * The esbuild settings of every bundle: the services' here, and the pipeline benchmark's roles
 * (bench/pipeline/ipc.ts imports them, so its edge runs built exactly as the edge image does).
 */
export const BUNDLE_OPTIONS = Object.freeze({
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
  legalComments: 'none',
});

/** Bundles a bundle needs beside it: the retrainer (and the all-in-one) start the training thread's. */
const COMPANIONS = { retrainer: ['train-worker'], driftline: ['train-worker'] };

/**
 * Modules that start a program when they are loaded (a top-level `runMain`, or a check of
 * `process.argv[1]` against `import.meta.url`, which a bundle would answer for the wrong file). Each
 * may only be the entry of its own bundle.
 */
const PROGRAMS = [
  ...Object.values(BUNDLES),
  'edge-inference/src/train-cli.ts',
  'broker/src/credentials-cli.ts',
  'retrainer/src/registry-cli.ts',
  'bin/evaluate.ts',
];

async function main() {
  // A bundle by its name or by its entry module (the images name the entry: edge-inference/src/main.ts).
  const byEntry = Object.fromEntries(Object.entries(BUNDLES).map(([n, e]) => [e, n]));
  const args = process.argv.slice(2);
  const o = args.indexOf('--outdir');
  // --outdir DIR: somewhere else under the project (tests build their own copy); the code finds the project
  // root above it, so it must stay inside the repository.
  const outdir = o >= 0 ? args.splice(o, 2)[1] : 'dist';
  if (!outdir || path.relative(root, path.resolve(root, outdir)).startsWith('..')) {
    process.stderr.write(`build: --outdir must name a folder inside ${root}, got ${String(outdir)}\n`);
    process.exit(2);
  }
  const asked = args.map((a) => byEntry[a] ?? a);
  for (const a of asked) {
    if (!(a in BUNDLES)) {
      process.stderr.write(
        `build: unknown bundle ${a} (one of: ${Object.keys(BUNDLES).join(' ')}, or its entry module)\n`,
      );
      process.exit(2);
    }
  }
  const names = new Set(asked.length > 0 ? asked : Object.keys(BUNDLES));
  for (const n of [...names]) for (const c of COMPANIONS[n] ?? []) names.add(c);
  if (asked.length === 0 && o < 0) rmSync(path.join(root, 'dist'), { recursive: true, force: true });
  const started = performance.now();
  for (const name of names) {
    const entry = BUNDLES[name];
    const result = await build({
      absWorkingDir: root,
      entryPoints: [entry],
      outfile: path.join(outdir, `${name}.mjs`),
      ...BUNDLE_OPTIONS,
      metafile: true,
    });
    const inputs = Object.keys(result.metafile.inputs);
    const stray = inputs.filter((f) => f !== entry && PROGRAMS.includes(f));
    if (stray.length > 0) {
      process.stderr.write(
        `build: ${name} would run ${stray.join(', ')} as well (a program module imported by ${entry})\n`,
      );
      process.exit(1);
    }
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  process.stdout.write(
    `built ${[...names].map((n) => path.join(outdir, `${n}.mjs`)).join(' ')} in ${seconds} s\n`,
  );
}

// Run as a program (`node scripts/build.mjs`), not when imported for BUNDLE_OPTIONS.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
