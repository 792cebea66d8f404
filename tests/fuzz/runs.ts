/**
 * How many generated cases each fuzz surface runs: FUZZ_RUNS from the
 * environment, 1,000 by default (`npm test`); `make test` sets 10,000.
 * FUZZ_SEED replays a run (each failure prints the seed it used).
 */
export const FUZZ_RUNS = Math.max(1, Number(process.env.FUZZ_RUNS ?? 1000) || 1000);
export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20_260_510) || 20_260_510;
