import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, summarizeConfig } from '../../../common/config/env.ts';
import { ConfigError } from '../../../common/errors.ts';
import { brokerConfigSpec, loadTls } from '../../../broker/src/config.ts';
import { urlHost } from '../../../broker/src/broker.ts';

describe('broker config', () => {
  it('has safe defaults: loopback, standard ports, cost 15', () => {
    const c = loadConfig(brokerConfigSpec, {});
    expect(c).toEqual({
      host: '127.0.0.1',
      port: 1883,
      wsPort: 8083,
      httpPort: 9101,
      credentialsFile: '.driftline/credentials.json',
      credentialsReloadMs: 2000,
      tlsKeyFile: undefined,
      tlsCertFile: undefined,
      tlsPort: 8883,
      scryptCost: 15,
      authCacheTtlMs: 60_000,
      deviceSubscribeOwn: true,
      maxPacketBytesPreLogin: 8192,
      maxPacketBytesDevice: 8192,
      maxPacketBytesService: 262_144,
      maxQueuedPerClient: 10_000,
      authMaxConcurrent: 4,
      authMaxQueued: 256,
      loginFailureWindowMs: 60_000,
      loginMaxFailuresPerAddress: 30,
      loginMaxFailuresPerUsername: 10,
    });
    expect(summarizeConfig(brokerConfigSpec, c)).toMatchObject({
      BROKER_HOST: '127.0.0.1',
      BROKER_PORT: 1883,
    });
  });

  it('lets WebSocket and ops ports be 0 (free) or off', () => {
    const c = loadConfig(brokerConfigSpec, {
      BROKER_WS_PORT: 'off',
      BROKER_HTTP_PORT: '0',
      BROKER_PORT: '0',
    });
    expect([c.wsPort, c.httpPort, c.port]).toEqual([null, 0, 0]);
  });

  it('reports every bad value in one readable error', () => {
    expect(() =>
      loadConfig(brokerConfigSpec, { BROKER_PORT: 'abc', BROKER_WS_PORT: '70000', BROKER_SCRYPT_COST: '30' }),
    ).toThrow(
      'Invalid configuration: BROKER_PORT="abc" is invalid: expected an integer from 0 to 65535; BROKER_WS_PORT="70000" is invalid: expected a port from 0 to 65535 or off; BROKER_SCRYPT_COST="30" is invalid: expected an integer from 10 to 20',
    );
  });

  it('reads TLS files only when both are set', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'driftline-tls-'));
    try {
      const key = path.join(dir, 'key.pem');
      const cert = path.join(dir, 'cert.pem');
      await writeFile(key, 'KEY');
      await writeFile(cert, 'CERT');
      expect(await loadTls({ tlsKeyFile: undefined, tlsCertFile: undefined, tlsPort: 8883 })).toBeUndefined();
      const tls = await loadTls({ tlsKeyFile: key, tlsCertFile: cert, tlsPort: 8884 });
      expect([tls?.port, tls?.key.toString(), tls?.cert.toString()]).toEqual([8884, 'KEY', 'CERT']);
      await expect(loadTls({ tlsKeyFile: key, tlsCertFile: undefined, tlsPort: 8883 })).rejects.toThrow(
        /must be set together/,
      );
      await expect(
        loadTls({ tlsKeyFile: key, tlsCertFile: path.join(dir, 'missing.pem'), tlsPort: 8883 }),
      ).rejects.toThrow(ConfigError);
      await expect(
        loadTls({ tlsKeyFile: key, tlsCertFile: path.join(dir, 'missing.pem'), tlsPort: 8883 }),
      ).rejects.toThrow(/BROKER_TLS_CERT_FILE=.*cannot be read: ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('builds client URLs for wildcard and IPv6 binds', () => {
    expect(urlHost('0.0.0.0')).toBe('127.0.0.1');
    expect(urlHost('::')).toBe('[::1]');
    expect(urlHost('::1')).toBe('[::1]');
    expect(urlHost('broker.local')).toBe('broker.local');
  });
});
