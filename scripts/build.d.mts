// Types of scripts/build.mjs for the TypeScript that imports it (bench/pipeline/ipc.ts).
import type { BuildOptions } from 'esbuild';

/** The esbuild settings of every bundle. */
export declare const BUNDLE_OPTIONS: Readonly<BuildOptions>;
/** Bundle name → entry module. */
export declare const BUNDLES: Readonly<Record<string, string>>;
