/**
 * `make smoke`: the deployed stack, end to end, through `kubectl port-forward` on 127.0.0.1 only.
 *
 * 1. Every workload answers: /readyz of the broker, bridge, each edge worker, retrainer and simulator,
 *    the dashboard's /healthz, MLflow's /health, Elasticsearch's cluster health, Kafka's port; the set-up
 *    Jobs completed.
 * 2. A device (smoke-000, its login from the smoke-secrets Secret) publishes telemetry over MQTT and its
 *    prediction comes back (broker → kafka-bridge → Kafka → edge → broker).
 * 3. The self-healing loop inside the cluster: from a steady state (every edge worker's live accuracy
 *    ≥ 0.95, no training running: after an earlier run the system first heals back to the restored
 *    stream), the simulator Deployment plays scenarios/loop-short.json
 *    (a concept drift) → the edge raises a drift alarm and asks for a retrain → the retrainer trains,
 *    promotes → MLflow's `champion` alias moves to the new version → every edge worker serves it. Then the
 *    simulator is put back exactly as Ansible deployed it (same field manager, so a later deploy is still
 *    `changed=0`). Its timings go to the console and test-results/cluster/smoke.json.
 * 4. The pods' logs are in the cluster's Elasticsearch, in today's daily index, with the loop's events.
 *
 * Needs the deployed cluster (make deploy) and the generated kustomization Ansible applied
 * ($DRIFTLINE_CACHE/deploy/kustomize). Fails, never skips.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  NAMESPACE,
  get,
  kubeJson,
  kubectl,
  metric,
  parseMetrics,
  portForward,
  waitFor,
  type PortForward,
} from './helpers/kube.ts';

const CACHE = process.env.DRIFTLINE_CACHE || path.join(os.homedir(), '.cache/driftline');
const KUSTOMIZATION = path.join(CACHE, 'deploy/kustomize');
const MODEL = process.env.MODEL_NAME || 'driftline-efficiency';
const SCENARIO = 'scenarios/loop-short.json';
/** Messages per second per machine while the drift scenario plays (4 machines). */
const LOOP_RATE_HZ = Number(process.env.SMOKE_LOOP_RATE_HZ || 50);
const LOOP_TIMEOUT_MS = Number(process.env.SMOKE_LOOP_TIMEOUT_S || 900) * 1000;
/** How long the loop waits for a steady state before it starts (see the loop test). */
const SETTLE_TIMEOUT_MS = Number(process.env.SMOKE_SETTLE_TIMEOUT_S || 900) * 1000;
const OUT = path.resolve('test-results/cluster');

const t0 = Date.now();
const timings: Record<string, number> = {};
const mark = (what: string): void => {
  timings[what] = Math.round((Date.now() - t0) / 100) / 10;
  process.stdout.write(`[smoke ${timings[what]?.toFixed(1)} s] ${what}\n`);
};

const forwards: PortForward[] = [];
async function forward(target: string, port: number): Promise<PortForward> {
  const f = await portForward(target, port);
  forwards.push(f);
  return f;
}

interface Manifest {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec: { template: { spec: { containers: { name: string; env?: { name: string; value?: string }[] }[] } } };
}

/** The simulator Deployment exactly as Ansible applied it (the generated kustomization, rendered again). */
async function deployedSimulator(): Promise<Manifest> {
  const docs = (await kubectl(['kustomize', KUSTOMIZATION])).split(/^---$/m);
  const doc = docs.find((d) => /^kind: Deployment$/m.test(d) && /^ {2}name: simulator$/m.test(d));
  if (!doc)
    throw new Error(`no simulator Deployment in kubectl kustomize ${KUSTOMIZATION} (run make deploy first)`);
  // YAML → JSON locally (client dry run: nothing is sent to the API server).
  return JSON.parse(
    await kubectl(['create', '--dry-run=client', '-o', 'json', '-f', '-'], { input: doc }),
  ) as Manifest;
}

/** Server-side apply with Ansible's field manager, so ownership ends up as the playbook left it. */
async function applyAsAnsible(m: Manifest): Promise<void> {
  await kubectl(
    ['apply', '--server-side', '--field-manager=driftline-ansible', '--force-conflicts', '-f', '-'],
    { input: JSON.stringify(m) },
  );
}

async function mlflowChampion(mlflow: PortForward): Promise<number | undefined> {
  const r = await get(
    `${mlflow.url}/api/2.0/mlflow/registered-models/alias?name=${encodeURIComponent(MODEL)}&alias=champion`,
  );
  if (r.status === 404) return undefined;
  if (r.status !== 200) throw new Error(`MLflow alias lookup → ${r.status}: ${r.text.slice(0, 200)}`);
  return Number((JSON.parse(r.text) as { model_version: { version: string } }).model_version.version);
}

/** Port-forwards to each edge worker (kept across polls; new workers of the HPA are added). */
const edgeForwards = new Map<string, PortForward>();
async function edgeMetrics(): Promise<Map<string, ReturnType<typeof parseMetrics>>> {
  const pods = await kubeJson<{ items: { metadata: { name: string }; status: { phase: string } }[] }>([
    'get',
    'pods',
    '-l',
    'app.kubernetes.io/name=edge-inference',
  ]);
  const out = new Map<string, ReturnType<typeof parseMetrics>>();
  for (const p of pods.items.filter((x) => x.status.phase === 'Running')) {
    const name = p.metadata.name;
    try {
      let f = edgeForwards.get(name);
      if (!f) {
        f = await forward(`pod/${name}`, 9102);
        edgeForwards.set(name, f);
      }
      out.set(name, parseMetrics((await get(`${f.url}/metrics`)).text));
    } catch {
      edgeForwards.get(name)?.close();
      edgeForwards.delete(name);
    }
  }
  return out;
}
const sum = (
  m: Map<string, ReturnType<typeof parseMetrics>>,
  name: string,
  match: Record<string, string> = {},
): number => [...m.values()].reduce((a, s) => a + metric(s, name, match), 0);
const servedVersions = (m: Map<string, ReturnType<typeof parseMetrics>>): string[] =>
  [...m.values()].map(
    (s) => s.find((x) => x.name === 'driftline_edge_model_info' && x.value === 1)?.labels.version ?? '?',
  );

let original: Manifest | undefined;

beforeAll(async () => {
  await mkdir(OUT, { recursive: true });
});

afterAll(async () => {
  // Put the simulator back as deployed, whatever happened.
  if (original)
    await applyAsAnsible(original).catch((err: unknown) =>
      process.stderr.write(`restore failed: ${String(err)}\n`),
    );
  for (const f of forwards) f.close();
  await writeFile(
    path.join(OUT, 'smoke.json'),
    `${JSON.stringify({ timings, finishedAt: new Date().toISOString() }, null, 2)}\n`,
  );
  process.stdout.write(`smoke timings (s from start): ${JSON.stringify(timings)}\n`);
}, 120_000);

describe(`Driftline deployed in namespace ${NAMESPACE}`, () => {
  it('every workload answers its health endpoint and the set-up Jobs completed', async () => {
    const jobs = await kubeJson<{ items: { metadata: { name: string }; status: { succeeded?: number } }[] }>([
      'get',
      'jobs',
      '-l',
      'app.kubernetes.io/component=setup',
    ]);
    expect(jobs.items.map((j) => [j.metadata.name, j.status.succeeded ?? 0]).sort()).toEqual([
      ['bootstrap-champion', 1],
      ['kafka-provision', 1],
    ]);
    const checks: [string, number, string][] = [
      ['svc/broker', 9101, '/readyz'],
      ['svc/kafka-bridge', 9104, '/readyz'],
      ['svc/retrainer', 9103, '/readyz'],
      ['deploy/simulator', 9105, '/readyz'],
      ['svc/dashboard', 8080, '/healthz'],
      ['svc/mlflow', 5000, '/health'],
      ['svc/elasticsearch', 9200, '/_cluster/health?wait_for_status=yellow&timeout=5s'],
    ];
    const edgePods = await kubeJson<{ items: { metadata: { name: string } }[] }>([
      'get',
      'pods',
      '-l',
      'app.kubernetes.io/name=edge-inference',
    ]);
    for (const p of edgePods.items) checks.push([`pod/${p.metadata.name}`, 9102, '/readyz']);
    // Each target gets a few tries on a new port-forward: a forward's first connection can be closed while
    // kubectl sets up its streams (one CI run: "fetch failed: other side closed" right after the deploy). A
    // workload that does not answer 200 within the tries fails, with what it answered last.
    const results: string[] = [];
    for (const [target, port, p] of checks) {
      let last = '';
      for (let attempt = 1; attempt <= 5; attempt++) {
        const f = await forward(target, port);
        try {
          last = String((await get(`${f.url}${p}`)).status);
        } catch (err) {
          const e = err as Error & { cause?: Error };
          last = `error: ${e.message}${e.cause ? ` (${e.cause.message})` : ''}`;
        } finally {
          f.close();
        }
        if (last === '200') break;
        await new Promise((r) => setTimeout(r, 2000));
      }
      results.push(`${target} ${p} ${last}`);
    }
    // Kafka: its port answers (clients need SASL; the bridge and the edge being ready proves they log in).
    const kafka = await forward('svc/kafka', 9092);
    await new Promise<void>((resolve, reject) => {
      const s = new net.Socket();
      s.once('error', reject);
      s.connect(kafka.port, '127.0.0.1', () => {
        s.end();
        resolve();
      });
    });
    kafka.close();
    mark('health endpoints');
    expect(results).toEqual(checks.map(([t, , p]) => `${t} ${p} 200`));
  }, 180_000);

  it('a device publishes telemetry over MQTT and gets its prediction back', async () => {
    const secret = await kubeJson<{ data: Record<string, string> }>(['get', 'secret', 'smoke-secrets']);
    const device = JSON.parse(Buffer.from(secret.data['device.json'] ?? '', 'base64').toString('utf8')) as {
      username: string;
      password: string;
      machineId: string;
    };
    const broker = await forward('svc/broker', 1883);
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, {
      clientId: `smoke-${Date.now().toString(36)}`,
      username: device.username,
      password: device.password,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 15_000,
    });
    try {
      const predictions: { seq: number; predictedClass?: string; modelVersion?: string }[] = [];
      client.on('message', (_topic, payload) =>
        predictions.push(JSON.parse(payload.toString()) as { seq: number }),
      );
      await client.subscribeAsync(`factory/${device.machineId}/prediction`, { qos: 1 });
      const seq = Date.now() % 1_000_000_000;
      const sent = Date.now();
      await client.publishAsync(
        `factory/${device.machineId}/telemetry`,
        JSON.stringify({
          machineId: device.machineId,
          seq,
          ts: Date.now(),
          operationMode: 'Active',
          temperatureC: 60,
          vibrationHz: 2.5,
          powerKw: 5,
          networkLatencyMs: 20,
          packetLossPct: 1,
          defectRatePct: 2,
          productionSpeedUph: 420,
          maintenanceScore: 0.8,
          errorRatePct: 1.5,
        }),
        { qos: 1 },
      );
      const p = await waitFor(
        'the prediction of the smoke device',
        async () => predictions.find((x) => x.seq === seq),
        60_000,
        200,
      );
      mark(`prediction back in ${Date.now() - sent} ms`);
      expect(p.seq).toBe(seq);
      expect(JSON.stringify(p)).toMatch(/Low|Medium|High/);
    } finally {
      await client.endAsync();
      broker.close();
    }
  }, 120_000);

  it(
    'heals a concept drift inside the cluster: alarm → retrain → new champion in MLflow → every edge worker swaps',
    async () => {
      const mlflow = await forward('svc/mlflow', 5000);
      const retrainer = await forward('svc/retrainer', 9103);
      // Start from a steady state: a champion that fits the stream the simulator plays now (after an earlier
      // smoke run the last champion learnt the drifted rule, and the restored stream heals it back first).
      const settled = await waitFor(
        'a steady state (live accuracy >= 0.95 on every edge worker with labels, no training running)',
        async () => {
          const m = await edgeMetrics();
          const acc = [...m.values()]
            .map((x) => metric(x, 'driftline_edge_live_accuracy'))
            .filter((v) => Number.isFinite(v));
          const training = metric(
            parseMetrics((await get(`${retrainer.url}/metrics`)).text),
            'driftline_retrainer_trainings_in_progress',
          );
          return acc.length > 0 && acc.every((v) => v >= 0.95) && training === 0 ? acc : undefined;
        },
        SETTLE_TIMEOUT_MS,
        5000,
      );
      const before = await mlflowChampion(mlflow);
      expect(before, 'a champion (the bootstrap one at least)').toBeGreaterThanOrEqual(1);
      const edge0 = await edgeMetrics();
      mark(
        `loop: steady state: champion v${before}, ${edge0.size} edge worker(s) serving ` +
          `${servedVersions(edge0).join(',')}, live accuracy ${settled.map((v) => v.toFixed(3)).join(',')}`,
      );

      // The simulator Deployment plays the drift scenario (same manifest, two env values changed).
      original = await deployedSimulator();
      const drift = JSON.parse(JSON.stringify(original)) as Manifest;
      const container = drift.spec.template.spec.containers[0];
      if (!container) throw new Error('simulator Deployment without a container');
      const env = (container.env ?? []).filter(
        (e) => !['SIMULATOR_SCENARIO_FILE', 'SIMULATOR_RATE_HZ'].includes(e.name),
      );
      env.push(
        { name: 'SIMULATOR_SCENARIO_FILE', value: SCENARIO },
        { name: 'SIMULATOR_RATE_HZ', value: String(LOOP_RATE_HZ) },
      );
      container.env = env;
      await applyAsAnsible(drift);
      await kubectl(['-n', NAMESPACE, 'rollout', 'status', 'deployment/simulator', '--timeout=180s'], {
        timeoutMs: 200_000,
      });
      mark(`loop: simulator plays ${SCENARIO} at ${LOOP_RATE_HZ} msg/s per machine`);

      const simulator = await waitFor(
        'the new simulator pod',
        async () => {
          const pods = await kubeJson<{
            items: { metadata: { name: string; deletionTimestamp?: string }; status: { phase: string } }[];
          }>(['get', 'pods', '-l', 'app.kubernetes.io/name=simulator']);
          const p = pods.items.find((x) => x.status.phase === 'Running' && !x.metadata.deletionTimestamp);
          return p?.metadata.name;
        },
        120_000,
      );
      const sim = await forward(`pod/${simulator}`, 9105);
      await waitFor(
        'the concept-drift phase',
        async () =>
          parseMetrics((await get(`${sim.url}/metrics`)).text).some(
            (s) =>
              s.name === 'driftline_simulator_phase_info' &&
              s.labels.phase === 'concept-drift' &&
              s.value === 1,
          ) || undefined,
        LOOP_TIMEOUT_MS,
      );
      mark('loop: drift phase started');
      // Everything below must happen after the drift started.
      const edge1 = await edgeMetrics();
      const alarms0 = sum(edge1, 'driftline_edge_alarms_total');
      const retr0 = parseMetrics((await get(`${retrainer.url}/metrics`)).text);
      const promotions0 = metric(retr0, 'driftline_retrainer_promotions_total');
      const versionAtDrift = (await mlflowChampion(mlflow)) as number;

      await waitFor(
        'a drift alarm on the edge',
        async () => (sum(await edgeMetrics(), 'driftline_edge_alarms_total') > alarms0 ? true : undefined),
        LOOP_TIMEOUT_MS,
      );
      mark('loop: drift alarm');
      await waitFor(
        'a retrain on the retrainer',
        async () => {
          const m = parseMetrics((await get(`${retrainer.url}/metrics`)).text);
          return metric(m, 'driftline_retrainer_trainings_in_progress') > 0 ||
            metric(m, 'driftline_retrainer_promotions_total') > promotions0 ||
            metric(m, 'driftline_retrainer_rejections_total') >
              metric(retr0, 'driftline_retrainer_rejections_total')
            ? true
            : undefined;
        },
        LOOP_TIMEOUT_MS,
        1000,
      );
      mark('loop: retrain running');
      await waitFor(
        'a promotion',
        async () =>
          metric(
            parseMetrics((await get(`${retrainer.url}/metrics`)).text),
            'driftline_retrainer_promotions_total',
          ) > promotions0
            ? true
            : undefined,
        LOOP_TIMEOUT_MS,
        1000,
      );
      mark('loop: challenger promoted');
      const after = await waitFor(
        'the champion alias on a new version in MLflow',
        async () => {
          const v = await mlflowChampion(mlflow);
          return v !== undefined && v > versionAtDrift ? v : undefined;
        },
        LOOP_TIMEOUT_MS,
        1000,
      );
      mark(`loop: MLflow champion → v${after}`);
      // Two-stage concept retraining may promote again (stage 2) meanwhile: every edge worker serves the
      // champion MLflow names at that moment, a version newer than the one at the drift.
      const swapped = await waitFor(
        `every edge worker serving MLflow's champion (v${after} or a later stage)`,
        async () => {
          const champion = await mlflowChampion(mlflow);
          const v = servedVersions(await edgeMetrics());
          return champion !== undefined && v.length > 0 && v.every((x) => x === String(champion))
            ? { champion, workers: v.length }
            : undefined;
        },
        LOOP_TIMEOUT_MS,
        1000,
      );
      mark(`loop: ${swapped.workers} edge worker(s) swapped to v${swapped.champion}`);
      expect(after).toBeGreaterThan(versionAtDrift);
      expect(swapped.champion).toBeGreaterThanOrEqual(after);
    },
    LOOP_TIMEOUT_MS * 2 + SETTLE_TIMEOUT_MS,
  );

  it('puts the simulator back as deployed', async () => {
    if (!original) throw new Error('the loop test did not record the simulator');
    await applyAsAnsible(original);
    original = undefined;
    await kubectl(['-n', NAMESPACE, 'rollout', 'status', 'deployment/simulator', '--timeout=180s'], {
      timeoutMs: 200_000,
    });
    const live = await kubeJson<Manifest>(['get', 'deployment', 'simulator']);
    const env = live.spec.template.spec.containers[0]?.env ?? [];
    expect(env.find((e) => e.name === 'SIMULATOR_SCENARIO_FILE')).toBeUndefined();
    mark('simulator restored');
  }, 240_000);

  it("the pods' logs are in Elasticsearch's daily index, the loop's events included", async () => {
    const es = await forward('svc/elasticsearch', 9200);
    const index = `edge-mlops-${new Date().toISOString().slice(0, 10).replace(/-/g, '.')}`;
    await get(`${es.url}/${index}/_refresh`);
    const search = async (
      body: unknown,
    ): Promise<{
      hits: { total: { value: number } };
      aggregations?: Record<string, { buckets: { key: string; doc_count: number }[] }>;
    }> => {
      const res = await fetch(`${es.url}/${index}/_search`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
      if (!res.ok) throw new Error(`search ${index} → ${res.status}: ${(await res.text()).slice(0, 300)}`);
      return (await res.json()) as never;
    };
    const r = await search({
      size: 0,
      aggs: {
        services: { terms: { field: 'service.name', size: 50 } },
        actions: { terms: { field: 'event.action', size: 200 } },
      },
    });
    const services = Object.fromEntries(
      (r.aggregations?.services?.buckets ?? []).map((b) => [b.key, b.doc_count]),
    );
    const actions = Object.fromEntries(
      (r.aggregations?.actions?.buckets ?? []).map((b) => [b.key, b.doc_count]),
    );
    process.stdout.write(
      `${index}: ${r.hits.total.value} documents; by service ${JSON.stringify(services)}\n`,
    );
    mark('logs counted');
    for (const s of [
      'broker',
      'kafka-bridge',
      'edge-inference',
      'retrainer',
      'dashboard',
      'simulator',
      'kafka-provision',
    ])
      expect(services[s] ?? 0, `log documents of ${s} in ${index}`).toBeGreaterThan(0);
    for (const a of ['drift-alarm', 'retrain-request', 'training-started', 'promoted', 'model-swap'])
      expect(actions[a] ?? 0, `event.action ${a} in ${index}`).toBeGreaterThan(0);
  }, 120_000);
});
