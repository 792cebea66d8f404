/**
 * Scenario generation speed (`npm run bench -- scenario`): samples per second
 * of the seed profile, the stream the simulator and the evaluator both read.
 * A figure, never a test assertion (it depends on the machine's load).
 */
import { generateStream } from '../common/scenario/generator.ts';
import { parseScenario } from '../common/scenario/scenario.ts';

export async function run(): Promise<Record<string, unknown>> {
  const samples = 500_000;
  const scenario = parseScenario({ seed: 5, machines: 4, phases: [{ name: 'b', samples }] });
  let n = 0;
  const started = performance.now();
  for (const s of generateStream(scenario)) n += s.telemetry.seq >= 0 ? 1 : 0;
  const seconds = (performance.now() - started) / 1000;
  return { samples: n, seconds: Number(seconds.toFixed(3)), samplesPerSecond: Math.round(n / seconds) };
}
