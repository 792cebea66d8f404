import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../common/errors.ts';
import { parseCliArgs } from '../../../simulator/src/cli.ts';
import { parseRate, simulatorConfigSpec } from '../../../simulator/src/config.ts';
import { parseCredentials } from '../../../simulator/src/credentials.ts';

describe('simulator configuration', () => {
  it('has the documented defaults', () => {
    const { config, out, maxSamples, help } = parseCliArgs([], {});
    expect(config).toEqual({
      mqttUrl: 'mqtt://127.0.0.1:1883',
      machines: 4,
      rateHz: 2,
      labelDelayMs: 2000,
      credentialsFile: undefined,
      scenarioFile: undefined,
      profile: 'seed',
      seed: 1,
      httpPort: 0,
      httpHost: '127.0.0.1',
    });
    expect([out, maxSamples, help]).toEqual([undefined, undefined, false]);
    expect(Object.values(simulatorConfigSpec).map((f) => f.env)).toEqual(
      expect.arrayContaining([
        'MQTT_URL',
        'SIMULATOR_MACHINES',
        'SIMULATOR_RATE_HZ',
        'SIMULATOR_LABEL_DELAY_MS',
        'SIMULATOR_CREDENTIALS_FILE',
        'SIMULATOR_SCENARIO_FILE',
      ]),
    );
  });

  it('reads the environment and lets flags override it', () => {
    const env = {
      MQTT_URL: 'mqtts://broker:8883',
      SIMULATOR_MACHINES: '8',
      SIMULATOR_RATE_HZ: 'max',
      SIMULATOR_SCENARIO_FILE: 'a.json',
    };
    const { config } = parseCliArgs(
      ['--rate', '125', '--scenario-file', 'b.json', '--label-delay-ms', '0'],
      env,
    );
    expect(config).toMatchObject({
      mqttUrl: 'mqtts://broker:8883',
      machines: 8,
      rateHz: 125,
      scenarioFile: 'b.json',
      labelDelayMs: 0,
    });
    expect(parseCliArgs(['--rate', 'max', '--out', 'x.jsonl', '--max-samples', '10'], {})).toMatchObject({
      config: { rateHz: 'max' },
      out: 'x.jsonl',
      maxSamples: 10,
    });
  });

  it('refuses bad values with one readable line naming each', () => {
    const attempt = (argv: string[], env: NodeJS.ProcessEnv = {}): string => {
      try {
        parseCliArgs(argv, env);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      return 'accepted';
    };
    expect(attempt(['--rate', 'fast'])).toMatch(
      /^Invalid configuration: --rate="fast" is invalid: expected .*or max$/,
    );
    expect(attempt([], { SIMULATOR_MACHINES: 'four' })).toMatch(
      /SIMULATOR_MACHINES="four" is invalid: expected an integer from 1 to 10000/,
    );
    expect(attempt(['--mqtt-url', 'http://x'])).toMatch(/--mqtt-url="http:\/\/x" is invalid/);
    expect(attempt(['--max-samples', 'ten'])).toMatch(
      /--max-samples="ten" is invalid: expected a whole number/,
    );
    expect(attempt(['--max-samples=-3'])).toMatch(/--max-samples="-3" is invalid/);
    expect(attempt(['--bogus'])).toMatch(/Unknown option '--bogus'/);
    const both = attempt(['--label-delay-ms', 'soon'], { SIMULATOR_RATE_HZ: '0' });
    expect(both).toMatch(/SIMULATOR_RATE_HZ="0" is invalid/);
    expect(both).toMatch(/--label-delay-ms="soon" is invalid/);
    expect(both.split('\n')).toHaveLength(1);
  });

  it('parses rates', () => {
    expect(parseRate('max')).toBe('max');
    expect(parseRate('MAX')).toBe('max');
    expect(parseRate('2.5')).toBe(2.5);
    expect(parseRate('0')).toBeUndefined();
    expect(parseRate('-1')).toBeUndefined();
    expect(parseRate('')).toBeUndefined();
    expect(parseRate('1e9')).toBeUndefined();
  });
});

describe('credentials file', () => {
  it('accepts devices and the inspection client (other keys ignored)', () => {
    const c = parseCredentials({
      devices: { 'm-000': 'pw0' },
      inspection: { username: 'inspector', password: 'pw' },
      other: 1,
    });
    expect(c).toEqual({ devices: { 'm-000': 'pw0' }, inspection: { username: 'inspector', password: 'pw' } });
  });

  it('names the bad field and never echoes a password', () => {
    expect(() =>
      parseCredentials({ devices: { 'm-000': 1234 }, inspection: { username: 'i', password: 'secret' } }),
    ).toThrow(/credentials: devices\.m-000: expected a string, got number$/);
    expect(() => parseCredentials({ devices: {} })).toThrow(/inspection: required, expected an object/);
    expect(() => parseCredentials({ devices: {}, inspection: { username: 'i', password: '' } })).toThrow(
      /inspection\.password: expected at least 1 characters/,
    );
  });
});
