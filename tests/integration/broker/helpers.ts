import { Registry } from 'prom-client';
import { silentLogger, type Logger } from '../../../common/logging/logger.ts';
import type { Role } from '../../../broker/src/acl.ts';
import { startBroker, type BrokerOptions, type RunningBroker } from '../../../broker/src/broker.ts';
import { CredentialStore } from '../../../broker/src/credentials.ts';
import { RawMqtt } from '../../../scripts/attacks/raw-mqtt.ts';

/** A broker on a free loopback port with in-memory users, and raw MQTT clients for it. */

export interface TestUser {
  username: string;
  password: string;
  role: Role;
  machineId?: string;
}

export const USERS = {
  device: { username: 'sensor-m1', password: 'pw-sensor-m1', role: 'device', machineId: 'm1' },
  device2: { username: 'sensor-m2', password: 'pw-sensor-m2', role: 'device', machineId: 'm2' },
  inspection: { username: 'inspect', password: 'pw-inspect', role: 'inspection' },
  edge: { username: 'edge', password: 'pw-edge', role: 'edge' },
  bridge: { username: 'bridge', password: 'pw-bridge', role: 'bridge' },
  dashboard: { username: 'dash', password: 'pw-dash', role: 'dashboard' },
  admin: { username: 'admin', password: 'pw-admin', role: 'admin' },
} as const satisfies Record<string, TestUser>;

export interface TestBroker {
  broker: RunningBroker;
  credentials: CredentialStore;
  registry: Registry;
  /** A raw client logged in as `user` (throws when the CONNACK is not 0). */
  login(
    user: TestUser,
    opts?: { clientId?: string; clean?: boolean; localAddress?: string },
  ): Promise<RawMqtt>;
  /** A raw TCP connection, no MQTT yet. */
  open(opts?: { localAddress?: string; timeoutMs?: number }): Promise<RawMqtt>;
  /** The value of a metric (summed over the label sets matching `labels`). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  close(): Promise<void>;
}

let seq = 0;

export async function startTestBroker(
  options: Partial<Omit<BrokerOptions, 'credentials' | 'registry' | 'logger'>> & {
    scryptCost?: number;
    logger?: Logger;
    credentials?: CredentialStore;
    users?: readonly TestUser[];
  } = {},
): Promise<TestBroker> {
  const { scryptCost, users, credentials: given, logger, ...rest } = options;
  const credentials = given ?? CredentialStore.inMemory({ scryptCost: scryptCost ?? 10 });
  for (const u of users ?? Object.values(USERS)) await credentials.add(u, { persist: false, replace: true });
  const registry = new Registry();
  const broker = await startBroker({
    port: 0,
    wsPort: null,
    credentials,
    logger: logger ?? silentLogger(),
    registry,
    ...rest,
  });
  const opened: RawMqtt[] = [];
  const open = async (o: { localAddress?: string; timeoutMs?: number } = {}): Promise<RawMqtt> => {
    const c = await RawMqtt.open({ port: broker.port, timeoutMs: o.timeoutMs ?? 10_000, ...o });
    opened.push(c);
    return c;
  };
  return {
    broker,
    credentials,
    registry,
    open,
    async login(user, opts = {}) {
      const c = await open(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress });
      const code = await c.connect({
        clientId: opts.clientId ?? `${user.username}-${++seq}`,
        username: user.username,
        password: user.password,
        ...(opts.clean === undefined ? {} : { clean: opts.clean }),
      });
      if (code !== 0) throw new Error(`${user.username} login: CONNACK ${String(code)}`);
      return c;
    },
    async metric(name, labels = {}) {
      const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
      if (m === undefined) throw new Error(`no metric ${name}`);
      return (m.values as Array<{ value: number; labels: Record<string, string | number> }>)
        .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
        .reduce((s, v) => s + v.value, 0);
    },
    async close() {
      for (const c of opened) c.destroy();
      await broker.close();
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits until `check` holds (polling), or throws naming `what`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
