import { describe, expect, it } from 'vitest';
import {
  bool,
  int,
  list,
  loadConfig,
  num,
  oneOf,
  optionalUrl,
  str,
  summarizeConfig,
} from '../../../../common/config/env.ts';
import { ConfigError } from '../../../../common/errors.ts';

const spec = {
  port: int('APP_PORT', { description: 'port', default: 1883, min: 1, max: 65535 }),
  ratio: num('APP_RATIO', { description: 'ratio', default: 0.5, min: 0, max: 1 }),
  debug: bool('APP_DEBUG', { description: 'debug', default: false }),
  mode: oneOf('APP_MODE', ['tumbling', 'hopping'] as const, { description: 'mode', default: 'tumbling' }),
  name: str('APP_NAME', { description: 'name', default: 'x', pattern: /^[a-z]+$/ }),
  password: str('APP_PASSWORD', { description: 'secret', default: 'changeme', secret: true }),
  brokers: list('APP_BROKERS', { description: 'brokers', pattern: /^[^:]+:\d+$/, allowed: 'host:port,…' }),
  url: optionalUrl('APP_URL', { description: 'url', protocols: ['http:', 'https:'] }),
};

describe('loadConfig', () => {
  it('applies defaults', () => {
    const c = loadConfig(spec, {});
    expect(c).toEqual({
      port: 1883,
      ratio: 0.5,
      debug: false,
      mode: 'tumbling',
      name: 'x',
      password: 'changeme',
      brokers: [],
      url: undefined,
    });
  });

  it('parses every kind of value', () => {
    const c = loadConfig(spec, {
      APP_PORT: '8080',
      APP_RATIO: '0.25',
      APP_DEBUG: 'yes',
      APP_MODE: 'hopping',
      APP_NAME: 'abc',
      APP_BROKERS: 'a:1, b:2',
      APP_URL: 'http://127.0.0.1:5000',
    });
    expect(c.port).toBe(8080);
    expect(c.ratio).toBe(0.25);
    expect(c.debug).toBe(true);
    expect(c.mode).toBe('hopping');
    expect(c.brokers).toEqual(['a:1', 'b:2']);
    expect(c.url).toBe('http://127.0.0.1:5000');
  });

  it('names every bad variable and what it allows, in one message', () => {
    let error: unknown;
    try {
      loadConfig(spec, {
        APP_PORT: '70000',
        APP_MODE: 'sliding',
        APP_RATIO: 'abc',
        APP_BROKERS: 'a',
        APP_URL: 'ftp://x',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const msg = (error as ConfigError).message;
    expect(msg.split('\n')).toHaveLength(1);
    expect(msg).toContain('APP_PORT="70000" is invalid: expected an integer from 1 to 65535');
    expect(msg).toContain('APP_MODE="sliding" is invalid: expected one of tumbling, hopping');
    expect(msg).toContain('APP_RATIO="abc" is invalid');
    expect(msg).toContain('APP_BROKERS');
    expect(msg).toContain('APP_URL');
    expect((error as ConfigError).retriable).toBe(false);
  });

  it('rejects non-integers for integer fields', () => {
    expect(() => loadConfig(spec, { APP_PORT: '1.5' })).toThrow(/APP_PORT/);
  });

  it('masks secrets in the summary and in errors', () => {
    const c = loadConfig(spec, { APP_PASSWORD: 'hunter2' });
    expect(summarizeConfig(spec, c).APP_PASSWORD).toBe('***');
    expect(JSON.stringify(summarizeConfig(spec, c))).not.toContain('hunter2');
    const strict = { p: str('P', { description: 'p', secret: true, pattern: /^\d+$/ }) };
    expect(() => loadConfig(strict, { P: 'hunter2' })).toThrow(/P="\*\*\*"/);
  });
});
