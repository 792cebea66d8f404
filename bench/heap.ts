/** Memory helpers for the benches that measure what a structure holds. */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** JS heap used after two full collections, MB (exposes gc at run time; no flag needed on the command). */
export function heapUsedMb(): number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}
