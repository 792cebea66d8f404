import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadSections, render } from '../../../scripts/gen-env-example.ts';

describe('.env.example', () => {
  it('documents every variable the config specs read, with the current defaults', async () => {
    const expected = render(await loadSections());
    const actual = readFileSync(new URL('../../../.env.example', import.meta.url), 'utf8');
    expect(actual, 'stale: run npx tsx scripts/gen-env-example.ts').toBe(expected);
  });

  it('names the switches to real systems', () => {
    const text = readFileSync(new URL('../../../.env.example', import.meta.url), 'utf8');
    for (const v of ['MQTT_URL', 'KAFKA_BROKERS', 'MLFLOW_TRACKING_URI']) expect(text).toContain(`# ${v}=`);
  });
});
