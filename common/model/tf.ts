import type * as tfjs from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ConfigError, DriftlineError, describeError } from '../errors.ts';
import { silentLogger, type Logger } from '../logging/logger.ts';

/**
 * Loads TensorFlow.js once per process on the fastest backend available:
 * the native `@tensorflow/tfjs-node` (backend `tensorflow`) when it is installed,
 * else WebAssembly (`wasm`, binaries read from node_modules, never fetched),
 * else the pure-JavaScript `cpu` backend with a warning.
 */

/** The tfjs namespace (tfjs-node re-exports the same API). */
export type Tf = typeof tfjs;

/** A backend Driftline can run on. */
export type TfBackend = 'tensorflow' | 'wasm' | 'cpu';

/** `TF_BACKEND` values: `auto` tries tensorflow → wasm → cpu. */
export type TfBackendChoice = 'auto' | TfBackend;

/** The loaded tfjs namespace and the backend it runs on. */
export interface LoadedTf {
  tf: Tf;
  backend: TfBackend;
}

/** Options of {@link loadTf}. */
export interface LoadTfOptions {
  /** Overrides `TF_BACKEND`. */
  backend?: TfBackendChoice;
}

/** Accepted values of `TF_BACKEND`. */
export const TF_BACKEND_CHOICES: readonly TfBackendChoice[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

/** A forced backend (`TF_BACKEND=…`) could not be initialised. */
export class TfBackendError extends DriftlineError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'TF_BACKEND_UNAVAILABLE', retriable: false, cause });
  }
}

// A variable specifier: TypeScript does not try to resolve it, so this file
// typechecks on machines where the optional native package is not installed.
const TFJS_NODE = '@tensorflow/tfjs-node';

let loading: Promise<LoadedTf> | undefined;
let loadedChoice: TfBackendChoice | undefined;

/**
 * Returns the process-wide tfjs instance, initialising it on the first call.
 * The backend is chosen by `options.backend`, else `TF_BACKEND` (default `auto`).
 * In `auto` mode a failing backend falls through to the next one; a forced
 * backend that fails rejects with {@link TfBackendError}. An invalid
 * `TF_BACKEND` rejects with a {@link ConfigError}. Later calls return the same
 * instance; asking later for a different forced backend than the one running
 * is an error.
 */
export async function loadTf(
  logger: Logger = silentLogger(),
  options: LoadTfOptions = {},
): Promise<LoadedTf> {
  const choice = parseChoice(options.backend ?? process.env.TF_BACKEND);
  if (loading) {
    const loaded = await loading;
    if (choice !== 'auto' && choice !== loaded.backend) {
      throw new TfBackendError(
        `tfjs is already running on backend ${loaded.backend} (requested ` +
          `${loadedChoice ?? 'auto'} first); cannot switch to ${choice} in the same process`,
      );
    }
    return loaded;
  }
  loadedChoice = choice;
  loading = initialise(choice, logger);
  try {
    return await loading;
  } catch (err) {
    loading = undefined;
    loadedChoice = undefined;
    throw err;
  }
}

function parseChoice(raw: string | undefined): TfBackendChoice {
  const value = (raw ?? '').trim().toLowerCase() || 'auto';
  if ((TF_BACKEND_CHOICES as readonly string[]).includes(value)) return value as TfBackendChoice;
  throw new ConfigError(
    `Invalid configuration: TF_BACKEND=${JSON.stringify(raw)} is ` +
      `invalid: expected one of ${TF_BACKEND_CHOICES.join(', ')}`,
  );
}

async function initialise(choice: TfBackendChoice, logger: Logger): Promise<LoadedTf> {
  const order: TfBackend[] = choice === 'auto' ? ['tensorflow', 'wasm', 'cpu'] : [choice];
  const failures: string[] = [];
  for (const backend of order) {
    try {
      const tf = await TRIES[backend]();
      logger.info(`tf backend: ${backend}`, {
        backend,
        ...(failures.length > 0 ? { skipped: failures } : {}),
      });
      return { tf, backend };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException | undefined)?.code;
      const why =
        backend === 'tensorflow' && code === 'ERR_MODULE_NOT_FOUND'
          ? `${TFJS_NODE} is not installed`
          : describeError(err);
      if (choice !== 'auto')
        throw new TfBackendError(`TF_BACKEND=${choice} failed to initialise: ${why}`, err);
      failures.push(`${backend}: ${why}`);
      if (backend === 'tensorflow') {
        // Absent is normal (optional dependency); installed but broken deserves a warning.
        if (code === 'ERR_MODULE_NOT_FOUND') logger.debug(`tfjs-node unavailable, trying wasm: ${why}`);
        else logger.warn(`tfjs-node is installed but failed to load, trying wasm: ${why}`, { reason: why });
      } else if (backend === 'wasm')
        logger.warn(`tf wasm backend failed, falling back to the slow cpu backend: ${why}`, { reason: why });
    }
  }
  throw new TfBackendError(`no tfjs backend could be initialised: ${failures.join('; ')}`);
}

/**
 * Imports a tfjs bundle with Node's source maps off. tsx turns them on for the whole process, and Node
 * then keeps the map each tfjs bundle names (`tf-core.node.js.map` and the rest, `sourcesContent`
 * included): ~18 MB of heap in every service for stack traces into minified tfjs. Our own code keeps its
 * maps: the setting is restored as soon as the bundles are loaded.
 */
async function importWithoutSourceMaps<T>(load: () => Promise<T>): Promise<T> {
  if (!process.sourceMapsEnabled) return load();
  process.setSourceMapsEnabled(false);
  try {
    return await load();
  } finally {
    process.setSourceMapsEnabled(true);
  }
}

/**
 * The part of the tfjs API Driftline uses — tfjs-core (tensors, ops, `io`, `train`) and tfjs-layers
 * (`sequential`, `layers`, `loadLayersModel`) — without the `@tensorflow/tfjs` bundle, which also loads
 * the converter, data and WebGL packages no service runs (the edge worker with tfjs loaded, after full GCs:
 * 41.3 → 28.6 MB of heap). The bundle's
 * namespace is the union of these two and those three, so the result is typed as the bundle; a service that
 * reached for `tf.data` or `tf.loadGraphModel` would find them undefined, and nothing here does.
 */
async function importCoreAndLayers(): Promise<Tf> {
  const [core, layers] = await Promise.all([
    import('@tensorflow/tfjs-core'),
    import('@tensorflow/tfjs-layers'),
  ]);
  return { ...core, ...layers } as unknown as Tf;
}

const TRIES: Record<TfBackend, () => Promise<Tf>> = {
  async tensorflow() {
    const mod = (await importWithoutSourceMaps(() => import(TFJS_NODE))) as Tf & { default?: Tf };
    const tf = typeof mod.setBackend === 'function' ? mod : mod.default;
    if (!tf || typeof tf.setBackend !== 'function')
      throw new Error(`${TFJS_NODE} did not export the tfjs API`);
    if (!(await tf.setBackend('tensorflow'))) throw new Error('tf.setBackend("tensorflow") returned false');
    await tf.ready();
    return tf;
  },
  async wasm() {
    const [tf, wasm] = await importWithoutSourceMaps(
      async () => [await importCoreAndLayers(), await import('@tensorflow/tfjs-backend-wasm')] as const,
    );
    // In Node the Emscripten loader reads the .wasm binary with fs.readFileSync
    // from `prefix + file name`, so a plain directory path with a trailing
    // separator keeps everything local (no fetch).
    // setWasmPaths throws once the backend is initialised (e.g. by another module); then it already has its binary.
    if (!tf.findBackend('wasm')) wasm.setWasmPaths(wasmDistDir());
    if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") returned false');
    await tf.ready();
    return tf;
  },
  async cpu() {
    const tf = await importWithoutSourceMaps(async () => {
      const api = await importCoreAndLayers();
      await import('@tensorflow/tfjs-backend-cpu');
      return api;
    });
    if (!(await tf.setBackend('cpu'))) throw new Error('tf.setBackend("cpu") returned false');
    await tf.ready();
    return tf;
  },
};

/** The `dist/` folder of `@tensorflow/tfjs-backend-wasm` holding the `.wasm` binaries, with a trailing separator. */
export function wasmDistDir(): string {
  const main = createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm');
  return path.dirname(main) + path.sep;
}
