/**
 * The deployment's files agree with the code and with each other (no cluster, no tools):
 * - the Kafka, Elasticsearch and MLflow images run the versions the tests run (the service scripts'
 *   defaults and the pinned MLflow requirement, read by scripts/images/versions.sh);
 * - every driftline/* image a manifest names is one scripts/images/build.sh builds, from a Dockerfile;
 * - every metric the Grafana dashboard queries is one the services export;
 * - every Prometheus scrape annotation names a port its container declares;
 * - the service Dockerfiles share their first stage byte for byte (one node_modules build for all).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../../..');
const read = (f: string): string => readFileSync(path.join(root, f), 'utf8');
const manifestFiles = (): string[] => {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(rel);
      else if (/\.ya?ml$/.test(e.name) && e.name !== 'kustomization.yaml') out.push(rel);
    }
  };
  walk('k8s');
  return out.sort();
};
const allManifests = (): string => manifestFiles().map(read).join('\n---\n');

describe('deployment files', () => {
  it('Kafka, Elasticsearch and MLflow images run the versions the tests run', () => {
    const versions = Object.fromEntries(
      execFileSync('bash', [path.join(root, 'scripts/images/versions.sh')], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .map((l) => l.split('=') as [string, string]),
    );
    expect(versions.KAFKA_VERSION).toMatch(/^4\./);
    expect(versions.ELASTICSEARCH_VERSION).toMatch(/^9\./);
    expect(read('scripts/services/kafka.sh')).toContain(`KAFKA_VERSION:-${versions.KAFKA_VERSION}}`);
    expect(read('scripts/services/elasticsearch.sh')).toContain(
      `ELASTICSEARCH_VERSION:-${versions.ELASTICSEARCH_VERSION}}`,
    );
    expect(read('scripts/setup/requirements-mlflow.txt')).toMatch(
      new RegExp(`^mlflow==${versions.MLFLOW_VERSION?.replace(/\./g, '\\.')}$`, 'm'),
    );
    const m = allManifests();
    expect(m).toContain(`image: driftline/kafka:${versions.KAFKA_VERSION}\n`);
    expect(m).toContain(`image: driftline/elasticsearch:${versions.ELASTICSEARCH_VERSION}\n`);
    expect(m).toContain(`image: driftline/mlflow:${versions.MLFLOW_VERSION}\n`);
    // The major the Elasticsearch client accepts (it refuses servers of another major).
    const client = JSON.parse(read('package.json')).dependencies['@elastic/elasticsearch'] as string;
    expect(client.replace(/^\D*/, '').split('.')[0]).toBe(versions.ELASTICSEARCH_VERSION?.split('.')[0]);
    expect(m).toContain(`image: docker.elastic.co/kibana/kibana:${versions.ELASTICSEARCH_VERSION}\n`);
  });

  it('every driftline/* image a manifest names is built by scripts/images/build.sh', () => {
    const build = read('scripts/images/build.sh');
    const listed = /^SERVICES=\(([^)]*)\)/m.exec(build)?.[1]?.split(/\s+/) ?? [];
    const infra = /^INFRA=\(([^)]*)\)/m.exec(build)?.[1]?.split(/\s+/) ?? [];
    const named = new Set(
      [...allManifests().matchAll(/image: driftline\/([a-z-]+)/g)].map((x) => x[1] as string),
    );
    expect([...named].sort()).toEqual([...listed, ...infra].sort());
    for (const s of listed)
      expect(existsSync(path.join(root, s, 'Dockerfile')), `${s}/Dockerfile`).toBe(true);
    for (const s of infra)
      expect(existsSync(path.join(root, 'scripts/images', s, 'Dockerfile')), s).toBe(true);
    // The kustomization pins a tag for each service image (Ansible replaces it with the built one).
    const kustomization = read('k8s/base/kustomization.yaml');
    for (const s of listed) expect(kustomization, s).toContain(`name: driftline/${s},`);
  });

  it('every metric the Grafana dashboard queries is exported by the code', () => {
    const dashboard = JSON.parse(read('k8s/grafana/driftline-dashboard.json')) as {
      panels: { title: string; targets?: { expr: string }[] }[];
    };
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(20);
    const used = new Set(
      exprs.flatMap((e) =>
        [...e.matchAll(/\b(driftline_[a-z_]+)\b/g)].map((x) =>
          (x[1] as string).replace(/_(bucket|sum|count)$/, ''),
        ),
      ),
    );
    const code = execFileSync('git', ['grep', '-h', '-o', "name: 'driftline_[a-z_]*'", '--', '*.ts'], {
      cwd: root,
      encoding: 'utf8',
    });
    const exported = new Set([...code.matchAll(/'(driftline_[a-z_]+)'/g)].map((x) => x[1] as string));
    expect([...used].filter((m) => !exported.has(m))).toEqual([]);
    // Throughput, latency, p-values, alarms and retrains are all there.
    for (const m of [
      'driftline_edge_predictions_total',
      'driftline_edge_prediction_latency_seconds',
      'driftline_edge_drift_p_value',
      'driftline_edge_alarms_total',
      'driftline_retrainer_trainings_total',
    ])
      expect(used.has(m), m).toBe(true);
  });

  it('every Prometheus scrape annotation names a port its container declares', () => {
    for (const f of manifestFiles()) {
      for (const doc of read(f).split(/^---$/m)) {
        const port = /prometheus\.io\/port: "(\d+)"/.exec(doc)?.[1];
        if (!port) continue;
        expect(doc, `${f}: containerPort ${port}`).toMatch(new RegExp(`containerPort: ${port}\\b`));
      }
    }
  });

  it('the service Dockerfiles share their first stage byte for byte', () => {
    const shared = (f: string): string => {
      const t = read(f);
      return t.slice(t.indexOf('# ---- shared by every'), t.indexOf('# ---- end of the shared part'));
    };
    const files = [
      'broker',
      'kafka-bridge',
      'edge-inference',
      'retrainer',
      'dashboard',
      'simulator',
      'jobs',
    ].map((s) => `${s}/Dockerfile`);
    const first = shared(files[0] as string);
    expect(first).toContain('npm ci --omit=dev');
    for (const f of files) {
      expect(shared(f), f).toBe(first);
      expect(read(f), f).not.toMatch(/\bnpx\b.*\.ts|CMD \["npx"/);
    }
  });
});
