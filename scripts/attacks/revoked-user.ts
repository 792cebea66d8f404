import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { RawMqtt } from './raw-mqtt.ts';
import { report, ROOT, sleep, startBrokerProcess } from './lib.ts';

/**
 * A device is logged in; an operator removes its user with
 * `npm run credentials -- remove` while it stays connected. After the broker
 * reloaded the file, does the connection still stand and still publish?
 *
 *   npx tsx scripts/attacks/revoked-user.ts
 */

const device = { username: 'sensor-m1', password: 'pw-device-1', role: 'device' as const, machineId: 'm1' };
const broker = await startBrokerProcess({
  users: [device],
  scryptCost: 10,
  env: { BROKER_CREDENTIALS_RELOAD_MS: '500' },
});
try {
  const c = await RawMqtt.open({ port: broker.port });
  if ((await c.connect({ clientId: 'sensor-m1', ...device })) !== 0) throw new Error('login');
  await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'broker/src/credentials-cli.ts', 'remove', device.username],
    { cwd: ROOT, env: { ...process.env, BROKER_CREDENTIALS_FILE: broker.credentialsFile } },
  );
  const removedAt = Date.now();
  await Promise.race([c.closed, sleep(5000)]);
  const stillConnected = !c.isClosed;
  const ack = stillConnected
    ? await c.publish({ topic: 'factory/m1/telemetry', payload: '{}', qos: 1, timeoutMs: 3000 })
    : 'closed';
  report('revoked-user', {
    reloadIntervalMs: 500,
    stillConnectedAfterMs: stillConnected ? Date.now() - removedAt : 0,
    connectionClosed: c.isClosed,
    publishAfterRemoval: ack,
  });
  c.destroy();
} finally {
  await broker.stop();
}
