import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { Registry } from 'prom-client';
import { startBroker, type RunningBroker } from '../../../broker/src/broker.ts';
import { CredentialStore } from '../../../broker/src/credentials.ts';
import { InProcessBus } from '../../../common/bus/in-process.ts';
import { silentLogger, type Logger } from '../../../common/logging/logger.ts';
import { connectMqtt } from '../../../common/mqtt/connect.ts';
import { DirectoryRegistry } from '../../../common/registry/directory.ts';
import { DEFAULT_MODEL_NAME } from '../../../common/model/types.ts';
import type { ModelVersion } from '../../../common/registry/types.ts';
import { hashDashboardPassword, type DashboardUser } from '../../../dashboard/src/auth.ts';
import {
  startDashboard,
  type DashboardOptions,
  type RunningDashboard,
} from '../../../dashboard/src/dashboard.ts';
import type { DashboardRole } from '../../../dashboard/src/shared/view.ts';

/**
 * A whole dashboard environment in one process for tests and the benchmark:
 * the secured broker on a loopback port (with `dashboard`, `edge` and `admin`
 * accounts), the in-process bus, a directory registry in a temp dir holding
 * small fake artifacts, and the dashboard itself with a viewer and an operator.
 */

export const TEST_MODEL = DEFAULT_MODEL_NAME;

/** Broker accounts of the stack. */
export const BROKER_ACCOUNTS = {
  dashboard: { username: 'dashboard', password: 'pw-dashboard', role: 'dashboard' },
  edge: { username: 'edge', password: 'pw-edge', role: 'edge' },
  admin: { username: 'admin', password: 'pw-admin', role: 'admin' },
} as const;

/** Dashboard logins of the stack. */
export const DASHBOARD_LOGINS = {
  operator: { username: 'olivia', password: 'operator-pass-1', role: 'operator' },
  viewer: { username: 'victor', password: 'viewer-pass-1', role: 'viewer' },
} as const satisfies Record<string, { username: string; password: string; role: DashboardRole }>;

/** Cheap scrypt for tests (the default cost is for production). */
export const TEST_SCRYPT = { N: 1024, r: 8, p: 1 } as const;

export async function testUsers(): Promise<DashboardUser[]> {
  return Promise.all(
    Object.values(DASHBOARD_LOGINS).map((u) =>
      hashDashboardPassword(u.username, u.role, u.password, TEST_SCRYPT),
    ),
  );
}

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A small fake model artifact (metadata.json listing sha256+bytes of its files) the directory registry accepts. */
export async function makeFakeArtifact(dir: string, seed: number): Promise<string> {
  await mkdir(dir, { recursive: true });
  const files: Record<string, Uint8Array> = {
    'model.json': Buffer.from(JSON.stringify({ modelTopology: { seed }, weightsManifest: [] })),
    'weights.bin': Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 7 + seed) % 256)),
  };
  const table: Record<string, { sha256: string; bytes: number }> = {};
  for (const [name, data] of Object.entries(files)) {
    await writeFile(path.join(dir, name), data);
    table[name] = { sha256: sha256(data), bytes: data.byteLength };
  }
  const metadata = {
    format: 'driftline-model/1',
    name: TEST_MODEL,
    version: 'candidate',
    createdAt: new Date().toISOString(),
    files: table,
  };
  await writeFile(path.join(dir, 'metadata.json'), JSON.stringify(metadata, null, 2));
  return dir;
}

export interface DashboardStackOptions {
  /** Passed to startDashboard (besides what the stack provides). */
  dashboard?: Partial<Omit<DashboardOptions, 'bus' | 'registry' | 'users' | 'mqttUrl'>>;
  /** Register and promote a first champion (v1). Default true. */
  champion?: boolean;
  logger?: Logger;
}

export interface DashboardStack {
  readonly broker: RunningBroker;
  readonly bus: InProcessBus;
  readonly registry: DirectoryRegistry;
  readonly dashboard: RunningDashboard;
  readonly dir: string;
  /** An MQTT client with the admin account (publishes anything: telemetry, predictions, status). */
  publisher(): Promise<MqttClient>;
  /** Registers a new fake version (metrics given) as a candidate. */
  registerVersion(
    metrics: { accuracy: number; macroF1: number; samples?: number },
    extra?: { requestId?: string; correlationId?: string; source?: string },
  ): Promise<ModelVersion>;
  /** Restarts the broker on the same port (the dashboard must reconnect). */
  restartBroker(): Promise<void>;
  close(): Promise<void>;
}

export async function startDashboardStack(options: DashboardStackOptions = {}): Promise<DashboardStack> {
  const logger = options.logger ?? silentLogger();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'driftline-dashboard-'));
  const credentials = CredentialStore.inMemory({ scryptCost: 10 });
  for (const a of Object.values(BROKER_ACCOUNTS))
    await credentials.add({ username: a.username, password: a.password, role: a.role }, { persist: false });
  let broker = await startBroker({
    host: '127.0.0.1',
    port: 0,
    wsPort: null,
    credentials,
    logger,
    registry: new Registry(),
    httpPort: null,
  });
  const port = broker.port;
  const bus = new InProcessBus({ logger });
  const registry = new DirectoryRegistry({ root: path.join(dir, 'registry'), logger });
  let seed = 0;
  const registerVersion: DashboardStack['registerVersion'] = async (metrics, extra = {}) => {
    const art = await makeFakeArtifact(path.join(dir, `artifact-${++seed}`), seed);
    return registry.registerVersion(TEST_MODEL, art, {
      correlationId: extra.correlationId ?? `test-${seed}`,
      ...(extra.requestId !== undefined ? { requestId: extra.requestId } : {}),
      metrics: { samples: metrics.samples ?? 1000, accuracy: metrics.accuracy, macroF1: metrics.macroF1 },
      source: extra.source ?? 'bootstrap',
    });
  };
  if (options.champion !== false) {
    const v1 = await registerVersion(
      { accuracy: 0.91, macroF1: 0.89, samples: 5000 },
      { source: 'bootstrap' },
    );
    await registry.setChampion(TEST_MODEL, v1.version, {
      by: 'bootstrap',
      reason: 'first model trained on the seed data set',
    });
  }
  const dashboard = await startDashboard({
    host: '127.0.0.1',
    port: 0,
    mqttUrl: broker.mqttUrl,
    mqttUsername: BROKER_ACCOUNTS.dashboard.username,
    mqttPassword: BROKER_ACCOUNTS.dashboard.password,
    bus,
    registry,
    modelName: TEST_MODEL,
    users: await testUsers(),
    logger,
    registryPollMs: 1000,
    mqttReconnectPeriodMs: 200,
    ...options.dashboard,
  });
  const clients: MqttClient[] = [];
  let n = 0;
  return {
    get broker() {
      return broker;
    },
    bus,
    registry,
    dashboard,
    dir,
    async publisher() {
      const c = await connectMqtt({
        url: `mqtt://127.0.0.1:${port}`,
        clientId: `test-publisher-${process.pid}-${++n}`,
        username: BROKER_ACCOUNTS.admin.username,
        password: BROKER_ACCOUNTS.admin.password,
        reconnectPeriodMs: 200,
      });
      clients.push(c);
      return c;
    },
    registerVersion,
    async restartBroker() {
      await broker.close();
      broker = await startBroker({
        host: '127.0.0.1',
        port,
        wsPort: null,
        credentials,
        logger,
        registry: new Registry(),
        httpPort: null,
      });
    },
    async close() {
      await Promise.allSettled(clients.map((c) => c.endAsync(true)));
      await dashboard.close();
      await broker.close();
      await bus.close();
      await registry.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Publishes JSON (QoS 1) and waits for the broker's acknowledgement. */
export async function publishJson(client: MqttClient, topic: string, value: unknown): Promise<void> {
  await client.publishAsync(topic, typeof value === 'string' ? value : JSON.stringify(value), { qos: 1 });
}
