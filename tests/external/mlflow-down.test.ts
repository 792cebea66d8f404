/**
 * "MLflow down at promotion time leaves the old champion serving and the
 * request retried later", against a REAL MLflow server.
 *
 * The retrainer service (`createRetrainer`, real in-thread tfjs training,
 * MLflow registry and run tracking) talks to MLflow through a small TCP proxy
 * (node `net`) that the test can switch off. The proxy is up while the retrain
 * reads the champion, trains, scores and registers the challenger; the moment
 * the registry tries to move the `champion` alias the proxy drops that request
 * (it never reaches MLflow) and refuses every connection from then on. The
 * test asserts that the alias still names the old champion, that the request
 * is not recorded as done (it waits for a retry), then brings the proxy back
 * and asserts the request is retried and the new challenger promoted.
 *
 * Needs `scripts/services/mlflow.sh start`. Fails, never skips, when MLflow is
 * unreachable. Every run uses a fresh registered-model name.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_BOOTSTRAP_DIR, ensureChampion } from '../../common/registry/bootstrap.ts';
import { InProcessBus } from '../../common/bus/in-process.ts';
import { BUS_TOPICS } from '../../common/bus/types.ts';
import { parseModelEvent } from '../../common/events/schemas.ts';
import { createLogger, type Logger } from '../../common/logging/logger.ts';
import { MlflowRegistry } from '../../common/registry/mlflow.ts';
import { loadTf } from '../../common/model/tf.ts';
import { MemorySampleStore } from '../../common/samples/memory-store.ts';
import { isFinal } from '../../retrainer/src/ledger.ts';
import { mlflowTrackingFor } from '../../retrainer/src/mlflow-tracking.ts';
import { createRetrainer, type Retrainer } from '../../retrainer/src/service.ts';
import { makeRequest, makeSamples, seedLabel } from '../../retrainer/src/testing/fakes.ts';
import { createInThreadTrainer } from '../../retrainer/src/trainer.ts';

const TRACKING_URI = (
  process.env.MLFLOW_TRACKING_URI || `http://127.0.0.1:${process.env.MLFLOW_PORT || '5055'}`
).replace(/\/+$/, '');
const MODEL = `driftline-down-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const OUT = path.resolve('test-results/mlflow-down');
/** The request line of the alias move (`MlflowClient.setAlias`). */
const ALIAS_MOVE = /POST \/api\/2\.0\/mlflow\/registered-models\/alias[ ?]/;

/** A TCP proxy in front of MLflow that can refuse connections, or trip itself on the alias move. */
class SwitchableProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  /** When set, the first alias-move request is dropped and the proxy goes down. */
  tripOnAliasMove = false;
  /** True once the alias move was intercepted. */
  tripped = false;
  /** Requests seen while up (any path). */
  forwarded = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    if (this.server) return;
    const server = net.createServer((client) => {
      const upstream = net.connect(this.target);
      this.sockets.add(client);
      this.sockets.add(upstream);
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('data', (chunk: Buffer) => {
        const text = chunk.toString('latin1');
        if (this.tripOnAliasMove && !this.tripped && ALIAS_MOVE.test(text)) {
          // MLflow goes away exactly at the promotion: this request never reaches it.
          this.tripped = true;
          void this.down();
          return;
        }
        this.forwarded++;
        // MLflow refuses a Host it does not serve (DNS-rebinding guard): present the target's.
        const host = `\r\nhost: 127.0.0.1:${this.port}\r\n`;
        const at = text.toLowerCase().indexOf(host);
        upstream.write(
          at < 0
            ? chunk
            : Buffer.from(
                `${text.slice(0, at)}\r\nhost: ` +
                  `${this.target.host}:${this.target.port}\r\n${text.slice(at + host.length)}`,
                'latin1',
              ),
        );
      });
      upstream.on('data', (chunk: Buffer) => client.write(chunk));
      client.on('error', drop);
      upstream.on('error', drop);
      client.on('close', drop);
      upstream.on('close', drop);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  /** Stops listening (new connections are refused) and cuts every open connection. */
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

async function requireMlflow(): Promise<void> {
  try {
    const health = await fetch(`${TRACKING_URI}/health`, { signal: AbortSignal.timeout(5000) });
    if (!health.ok) throw new Error(`/health answered ${health.status}`);
  } catch (err) {
    throw new Error(
      `MLflow is not reachable at ${TRACKING_URI} (${String(err)}). Start it with: scripts/services/mlflow.sh start`,
    );
  }
}

/** The version the `champion` alias names, read straight from MLflow (not through the proxy). */
async function championAlias(): Promise<string | undefined> {
  const url = new URL(`${TRACKING_URI}/api/2.0/mlflow/registered-models/alias`);
  url.searchParams.set('name', MODEL);
  url.searchParams.set('alias', 'champion');
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`alias lookup → ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { model_version?: { version?: string } }).model_version?.version;
}

let proxy: SwitchableProxy | undefined;
let retrainer: Retrainer | undefined;
let registry: MlflowRegistry | undefined;
let direct: MlflowRegistry | undefined;
let bus: InProcessBus | undefined;
let tmp: string | undefined;
let logStream: WriteStream | undefined;

afterAll(async () => {
  await proxy?.up().catch(() => undefined); // let a retrainer stuck on MLflow finish
  await retrainer?.close();
  await bus?.close();
  await registry?.close();
  await direct?.close();
  await proxy?.down();
  await new Promise<void>((resolve) => (logStream ? logStream.end(resolve) : resolve()));
  if (tmp) await rm(tmp, { recursive: true, force: true });
}, 120_000);

describe(`MLflow (${TRACKING_URI}) down at promotion time`, () => {
  it('leaves the old champion serving, keeps the request pending, and promotes on a later retry', async () => {
    await requireMlflow();
    await mkdir(OUT, { recursive: true });
    logStream = createWriteStream(path.join(OUT, 'retrainer.log'));
    const logger: Logger = createLogger({
      service: 'retrainer',
      format: 'pretty',
      stream: logStream,
      level: 'info',
    });
    tmp = await mkdtemp(path.join(tmpdir(), 'driftline-mlflow-down-'));

    // The old champion: the bootstrap model (trained on the seed rule), registered straight into MLflow.
    direct = new MlflowRegistry({
      clientOptions: { trackingUri: TRACKING_URI },
      cacheDir: path.join(tmp, 'cache-direct'),
    });
    const old = await ensureChampion(direct, MODEL, DEFAULT_BOOTSTRAP_DIR, logger);
    expect(await championAlias()).toBe(old.version);

    const target = new URL(TRACKING_URI);
    proxy = new SwitchableProxy({ host: target.hostname, port: Number(target.port || 80) });
    await proxy.up();
    const p = proxy;
    // Few, quick client retries: the service's own retry is what is under test.
    registry = new MlflowRegistry({
      clientOptions: {
        trackingUri: p.url,
        retry: { attempts: 2, initialDelayMs: 50, maxDelayMs: 100 },
        timeoutMs: 10_000,
      },
      cacheDir: path.join(tmp, 'cache'),
      logger,
    });

    // After the drift: labels follow a shifted rule that the champion gets partly wrong.
    const store = new MemorySampleStore();
    await store.append(makeSamples(3000, { label: (r) => seedLabel(r, 150) }));
    const { tf } = await loadTf(logger);
    bus = new InProcessBus({ redeliveryDelayMs: 1 });
    retrainer = createRetrainer({
      bus,
      registry,
      tracking: mlflowTrackingFor(registry, logger),
      store,
      tf,
      trainer: createInThreadTrainer({ tf }),
      logger,
      consumeSamples: false,
      config: {
        modelName: MODEL, // the retrainer serves this model only
        stateDir: path.join(tmp, 'state'),
        minSamples: 500,
        epochs: 8,
        inThread: true,
        timeoutMs: 60_000,
        dataRetryMs: 1000,
        dataMaxAttempts: 8,
      },
    });
    await retrainer.start();
    const request = makeRequest({
      requestId: randomBytes(16).toString('hex'),
      modelName: MODEL,
      championVersion: old.version,
      window: { fromTs: 1_700_000_000_000, toTs: 1_700_000_000_000 + 3000 * 1000 },
    });
    p.tripOnAliasMove = true;
    expect(await retrainer.submit(request)).toBe('accepted');
    const r = retrainer;

    // ---- MLflow goes away at the alias move --------------------------------------------------
    await expect
      .poll(() => p.tripped, {
        timeout: 90_000,
        interval: 100,
        message: 'the retrain never reached the alias move',
      })
      .toBe(true);
    await expect
      .poll(() => r.record(request.requestId)?.status, {
        timeout: 30_000,
        interval: 100,
        message: 'the request was not put back to wait for a retry',
      })
      .toBe('waiting-for-data');
    const afterFailure = r.record(request.requestId);
    expect(afterFailure?.reason ?? '').toMatch(/MLflow|TransportError/);
    expect(await championAlias(), 'the old champion keeps serving').toBe(old.version);
    const versions = await direct.listVersions(MODEL);
    const stranded = versions.filter((v) => v.version !== old.version);
    expect(
      stranded.map((v) => v.status),
      'the challenger registered before the outage stays a candidate',
    ).toEqual(['candidate']);

    // Still down: the next attempt fails as well, and the request is still not done.
    await expect
      .poll(() => r.record(request.requestId)?.attempts ?? 0, { timeout: 15_000, interval: 100 })
      .toBeGreaterThanOrEqual(2);
    await expect
      .poll(() => r.record(request.requestId)?.status, { timeout: 15_000, interval: 100 })
      .toBe('waiting-for-data');
    const pending = r.record(request.requestId);
    expect(
      pending && isFinal(pending.status),
      `recorded as done while MLflow is down: ${JSON.stringify(pending)}`,
    ).toBe(false);
    expect(await championAlias()).toBe(old.version);
    expect(bus.retained(BUS_TOPICS.modelEvents), 'no model event while the outcome is unknown').toHaveLength(
      0,
    );

    // ---- MLflow is back: the retry trains again and promotes ----------------------------------
    await p.up();
    await expect
      .poll(() => r.record(request.requestId)?.status, {
        timeout: 120_000,
        interval: 200,
        message: 'the request was not promoted after MLflow came back',
      })
      .toBe('promoted');
    const done = r.record(request.requestId);
    expect(done?.attempts).toBeGreaterThanOrEqual(3);
    expect(done?.version).toBeDefined();
    expect(await championAlias(), 'the retried challenger is the champion').toBe(done?.version);
    expect(done?.version).not.toBe(stranded[0]?.version);
    await bus.idle();
    const events = bus.retained(BUS_TOPICS.modelEvents).map((m) => parseModelEvent(m.value));
    expect(
      events.map((e) => (e.ok ? `${e.value.type} ${'version' in e.value ? e.value.version : ''}` : e.reason)),
    ).toEqual([`model-promoted ${done?.version}`]);
  }, 240_000);
});
