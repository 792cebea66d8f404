/**
 * How many generated cases each fuzz surface runs: FUZZ_RUNS from the
 * environment, 200 by default (`npm test`, the fast inner loop: the first 200
 * cases of the same seeded stream); `make test` sets 10,000.
 * FUZZ_SEED replays a run (each failure prints the seed it used).
 */
export const FUZZ_RUNS = Math.max(1, Number(process.env.FUZZ_RUNS ?? 200) || 200);
export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20_260_510) || 20_260_510;
