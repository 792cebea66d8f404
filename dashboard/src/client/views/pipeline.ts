import type { ConnectionView, WorkerView } from '../../shared/view.ts';
import { throughputChart, widthOf, type Chart } from '../charts.ts';
import { byId, cell, h, KeyedRows, setClassName, setText, setTitle, show, Slot } from '../dom.ts';
import { ago, clock, count, DASH, latencyMs, num, rate, version } from '../format.ts';
import { Seen, type ClientState } from '../state.ts';
import { backendName } from './model.ts';

export function connectionClass(state: ConnectionView['state']): string {
  return state === 'connected'
    ? 'badge-ok'
    : state === 'error'
      ? 'badge-bad'
      : state === 'closed'
        ? 'badge-plain'
        : 'badge-warn';
}

class ConnRow {
  readonly el: HTMLTableRowElement;
  private readonly name = new Slot();
  private readonly state = h('span', 'badge');
  private readonly detail = h('td');
  private readonly since = new Slot();
  constructor() {
    this.el = h(
      'tr',
      undefined,
      cell(this.name),
      h('td', undefined, this.state),
      this.detail,
      cell(this.since),
    );
  }
  update(r: { name: string; c: ConnectionView }): void {
    this.name.set(r.name);
    setText(this.state, r.c.state);
    setClassName(this.state, `badge ${connectionClass(r.c.state)}`);
    const text = r.c.detail === '' ? r.c.target : `${r.c.target} · ${r.c.detail}`;
    setText(this.detail, text);
    setTitle(this.detail, text);
    this.since.set(clock(r.c.since));
  }
}

class WorkerRow {
  readonly el: HTMLTableRowElement;
  private readonly id = h('td', 'mono');
  private readonly ready = h('span', 'badge');
  private readonly slots = Array.from({ length: 10 }, () => new Slot());
  private readonly registry = h('td');
  private readonly age = new Slot();
  private receivedAt = 0;
  constructor(private readonly now: () => number) {
    const [model, backend, inS, outS, batch, p50, p95, p99, queue, bus] = this.slots as [
      Slot,
      Slot,
      Slot,
      Slot,
      Slot,
      Slot,
      Slot,
      Slot,
      Slot,
      Slot,
    ];
    this.el = h(
      'tr',
      undefined,
      this.id,
      h('td', undefined, this.ready),
      cell(model),
      cell(backend),
      cell(inS, 'num'),
      cell(outS, 'num'),
      cell(batch, 'num'),
      cell(p50, 'num'),
      cell(p95, 'num'),
      cell(p99, 'num'),
      cell(queue, 'num'),
      cell(bus),
      this.registry,
      cell(this.age, 'num'),
    );
  }
  update(w: WorkerView): void {
    const [model, backend, inS, outS, batch, p50, p95, p99, queue, bus] = this.slots as [
      Slot,
      Slot,
      Slot,
      Slot,
      Slot,
      Slot,
      Slot,
      Slot,
      Slot,
      Slot,
    ];
    setText(this.id, w.workerId);
    setTitle(this.id, w.workerId);
    setText(this.ready, w.ready ? 'ready' : 'not ready');
    setClassName(this.ready, `badge ${w.ready ? 'badge-ok' : 'badge-warn'}`);
    model.set(version(w.modelVersion));
    backend.set(backendName(w.backend));
    inS.set(rate(w.messagesInPerSec));
    outS.set(rate(w.predictionsOutPerSec));
    batch.set(num(w.meanBatchSize, 1));
    p50.set(num(w.latencyMs.p50, 1));
    p95.set(num(w.latencyMs.p95, 1));
    p99.set(num(w.latencyMs.p99, 1));
    queue.set(count(w.queueDepth));
    bus.set(w.bus);
    setText(this.registry, w.registry);
    setTitle(this.registry, w.registry);
    this.receivedAt = w.receivedAt;
    this.tick();
  }
  tick(): void {
    this.age.set(ago(this.now() - this.receivedAt));
  }
}

class InvalidRow {
  readonly el: HTMLTableRowElement;
  private readonly source = new Slot();
  private readonly reason = new Slot();
  private readonly n = new Slot();
  constructor() {
    this.el = h('tr', undefined, cell(this.source), cell(this.reason), cell(this.n, 'num'));
  }
  update(r: { source: string; reason: string; n: number }): void {
    this.source.set(r.source);
    this.reason.set(r.reason);
    this.n.set(count(r.n));
  }
}

/** Messages per second in and out, batch sizes, latency percentiles, backends, refused messages. */
export class PipelineView {
  private readonly seen = new Seen();
  private chart: Chart | undefined;
  private readonly chartBox = byId('throughput-chart');
  private readonly conns = new KeyedRows(
    byId('conn-rows'),
    (r: { name: string; c: ConnectionView }) => r.name,
    () => new ConnRow(),
  );
  private readonly workers = new KeyedRows(
    byId('worker-rows'),
    (w: WorkerView) => w.workerId,
    () => new WorkerRow(() => this.state.now()),
  );
  private readonly invalid = new KeyedRows(
    byId('invalid-rows'),
    (r: { source: string; reason: string; n: number }) => `${r.source}\u0000${r.reason}`,
    () => new InvalidRow(),
  );

  constructor(private readonly state: ClientState) {}

  private drawKpis(): void {
    const ws = this.state.snapshot?.pipeline.workers ?? [];
    const sum = (f: (w: WorkerView) => number): number => ws.reduce((a, w) => a + f(w), 0);
    const none = ws.length === 0;
    setText(byId('pipe-in'), none ? DASH : rate(sum((w) => w.messagesInPerSec)));
    setText(byId('pipe-out'), none ? DASH : rate(sum((w) => w.predictionsOutPerSec)));
    setText(byId('pipe-batch'), none ? DASH : num(sum((w) => w.meanBatchSize) / ws.length, 1));
    const worst = (k: 'p50' | 'p95' | 'p99'): number | null => {
      let v: number | null = null;
      for (const w of ws) {
        const x = w.latencyMs[k];
        if (x !== null && (v === null || x > v)) v = x;
      }
      return v;
    };
    // At most four characters each (74 · 227 · 272, or 1.0k · 1.8k · 1.8k on a loaded machine), so the three
    // fit the KPI card; thousands get a smaller font (`long`). The title keeps a decimal.
    const latency = byId('pipe-latency');
    const text = none
      ? DASH
      : `${latencyMs(worst('p50'))} · ${latencyMs(worst('p95'))} · ${latencyMs(worst('p99'))}`;
    setText(latency, text);
    setClassName(latency, text.includes('k') || text.includes('M') ? 'kpi-value long' : 'kpi-value');
    setTitle(
      latency,
      none
        ? ''
        : `p50 ${num(worst('p50'), 1)} ms · p95 ${num(worst('p95'), 1)} ms · p99 ${num(worst('p99'), 1)} ms (slowest worker)`,
    );
    setText(byId('pipe-queue'), none ? DASH : count(sum((w) => w.queueDepth)));
    setText(
      byId('pipe-dl'),
      none ? DASH : count(sum((w) => Object.values(w.deadLetters).reduce((a, b) => a + b, 0))),
    );
    this.workers.sync(ws);
    show(byId('workers-empty'), none);
  }

  private drawConnections(): void {
    const c = this.state.snapshot?.connections;
    if (c === undefined) return;
    this.conns.sync([
      { name: 'MQTT broker', c: c.mqtt },
      { name: 'Event bus', c: c.bus },
      {
        name: 'Model registry',
        c: {
          ...c.registry,
          detail:
            c.registry.detail ||
            (c.registry.lastRefresh === null ? '' : `read ${clock(c.registry.lastRefresh)}`),
        },
      },
    ]);
  }

  private drawInvalid(): void {
    const inv = this.state.snapshot?.invalid;
    if (inv === undefined) return;
    const rows: { source: string; reason: string; n: number }[] = [];
    for (const [source, reasons] of Object.entries(inv.bySource))
      for (const [reason, n] of Object.entries(reasons)) rows.push({ source, reason, n });
    rows.sort((a, b) => b.n - a.n);
    if (inv.ignored > 0) rows.push({ source: '(other topics)', reason: 'not read', n: inv.ignored });
    this.invalid.sync(rows);
    show(byId('invalid-empty'), rows.length === 0);
  }

  private drawChart(): void {
    const pts = this.state.snapshot?.pipeline.throughput ?? [];
    if (this.chart === undefined) return;
    this.chart.setData([
      pts.map((p) => p.t / 1000),
      pts.map((p) => p.telemetry),
      pts.map((p) => p.predictions),
      pts.map((p) => p.labels),
    ]);
  }

  render(): void {
    this.chart ??= throughputChart(this.chartBox, widthOf(this.chartBox), 240);
    const epoch = this.seen.newEpoch(this.state);
    const workers = this.seen.changed(this.state, 'workers');
    const conns = this.seen.changed(this.state, 'connections');
    const inv = this.seen.changed(this.state, 'invalid');
    const tp = this.seen.changed(this.state, 'throughput');
    if (epoch || workers) this.drawKpis();
    if (epoch || conns) this.drawConnections();
    if (epoch || inv) this.drawInvalid();
    if (epoch || tp) this.drawChart();
  }

  /** Once a second: status ages only. */
  tick(): void {
    this.workers.forEach((row) => row.tick());
  }

  invalidate(): void {
    this.seen.reset();
  }

  resize(): void {
    this.chart?.setSize({ width: widthOf(this.chartBox), height: 240 });
  }
}
