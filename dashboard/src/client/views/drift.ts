import { FEATURES, type Feature } from '../../../../common/schema/features.ts';
import { describeRetrain, RetrainIndex } from '../../shared/join.ts';
import type {
  AlarmView,
  DriftGroupView,
  FeatureHistory,
  FeatureStatusView,
  RetrainView,
} from '../../shared/view.ts';
import {
  cumulativeShares,
  ecdfChart,
  histogramChart,
  sparkline,
  stepShares,
  widthOf,
  type Chart,
} from '../charts.ts';
import { byId, cell, h, KeyedRows, setClass, setClassName, setText, setTitle, show, Slot } from '../dom.ts';
import { clock, DASH, num, pct, pvalue, version } from '../format.ts';
import { Seen, type ClientState } from '../state.ts';

const SPARK_W = 160;
const SPARK_H = 26;
const MAX_ALARM_ROWS = 50;

class FeatureRow {
  readonly el: HTMLTableRowElement;
  private readonly stat = new Slot();
  private readonly crit = new Slot();
  private readonly p = new Slot();
  private readonly thr = new Slot();
  private readonly state = h('span', 'badge badge-plain', '—');
  readonly sparkBox = h('div', 'spark');
  private chart: Chart | undefined;

  constructor(
    readonly feature: Feature,
    onPick: (f: Feature) => void,
  ) {
    this.el = h(
      'tr',
      undefined,
      h('td', 'feature-name', feature),
      cell(this.stat, 'num'),
      cell(this.crit, 'num'),
      cell(this.p, 'num'),
      cell(this.thr, 'num'),
      h('td', undefined, this.sparkBox),
      h('td', undefined, this.state),
    );
    this.el.dataset.feature = feature;
    this.el.addEventListener('click', () => onPick(feature));
  }

  update(s: FeatureStatusView | undefined, history: FeatureHistory | undefined): void {
    this.stat.set(num(s?.statistic, 3));
    this.crit.set(num(s?.criticalStatistic, 3));
    this.p.set(pvalue(s?.pvalue));
    this.thr.set(pvalue(s?.threshold));
    const drifted = s?.drifted === true;
    setClass(this.el, 'drifted', drifted);
    setText(this.state, s === undefined ? DASH : drifted ? 'DRIFT' : 'stable');
    setClassName(this.state, `badge ${s === undefined ? 'badge-plain' : drifted ? 'badge-bad' : 'badge-ok'}`);
    if (history !== undefined && this.chart !== undefined) {
      const xs = history.statistic.map((_, i) => i);
      const marks = history.statistic.map((v, i) => (history.drifted[i] === true ? v : null));
      this.chart.setData([xs, history.statistic, history.critical, marks]);
    } else this.chart?.setData([[], [], [], []]);
  }

  /** Sparklines are created when the view is first visible (uPlot needs a laid-out container). */
  ensureChart(): void {
    this.chart ??= sparkline(this.sparkBox, SPARK_W, SPARK_H);
  }

  select(on: boolean): void {
    setClass(this.el, 'selected', on);
  }
}

class AlarmRow {
  readonly el: HTMLTableRowElement;
  private readonly time = new Slot();
  private readonly kind = h('span', 'badge');
  private readonly group = h('td');
  private readonly evidence = h('td');
  private readonly acc = new Slot();
  private readonly model = new Slot();
  private readonly retrain = h('span', 'badge');
  private readonly decision = h('td');

  constructor() {
    this.el = h(
      'tr',
      undefined,
      cell(this.time),
      h('td', undefined, this.kind),
      this.group,
      this.evidence,
      cell(this.acc, 'num'),
      cell(this.model),
      h('td', undefined, this.retrain),
      this.decision,
    );
  }

  update(x: { alarm: AlarmView; retrain: RetrainView | undefined }): void {
    const { alarm: a, retrain: r } = x;
    this.time.set(clock(a.publishedAt));
    setText(this.kind, a.kind);
    setClassName(this.kind, `badge ${a.kind === 'covariate' ? 'badge-warn' : 'badge-info'}`);
    setText(this.group, a.groupKey);
    setTitle(this.group, a.groupKey);
    const ev =
      a.kind === 'concept' || a.features.length === 0
        ? `live accuracy ${pct(a.liveAccuracy)} below validation`
        : a.features
            .slice(0, 3)
            .map((f) => `${f.feature} D=${f.statistic.toFixed(3)} p=${pvalue(f.pvalue)}`)
            .join(' · ');
    setText(this.evidence, ev);
    setTitle(
      this.evidence,
      `${ev}\ncorrelation ` +
        `${a.correlationId}${a.requestId !== null ? `\nrequest ${a.requestId}` : ' (joined an open episode)'}`,
    );
    this.acc.set(pct(a.liveAccuracy));
    this.model.set(version(a.modelVersion));
    setText(this.retrain, describeRetrain(r));
    const cls =
      r === undefined
        ? 'badge-plain'
        : r.outcome === 'promoted'
          ? 'badge-ok'
          : r.outcome === 'rejected'
            ? 'badge-plain'
            : 'badge-warn';
    setClassName(this.retrain, `badge ${cls}`);
    let decision = DASH;
    if (r !== undefined && r.outcome !== 'pending') {
      const c = r.candidateMetrics?.macroF1;
      const o = r.championMetrics?.macroF1;
      decision = `${r.outcome === 'promoted' ? `v${r.candidateVersion ?? '?'} live` : `kept v${r.championVersion ?? '?'}`}${c !== undefined ? ` · F1 ${c.toFixed(3)}${o !== undefined ? ` vs ${o.toFixed(3)}` : ''}` : ''}`;
    }
    setText(this.decision, decision);
    setTitle(this.decision, r?.reason ?? '');
  }
}

/**
 * The live drift panel: per-feature KS results with sparklines, reference vs current distributions, the alarm
 * timeline.
 */
export class DriftView {
  private readonly seen = new Seen();
  private readonly rows: FeatureRow[];
  private readonly groupSelect = byId<HTMLSelectElement>('drift-group');
  private readonly featureSelect = byId<HTMLSelectElement>('drift-feature');
  private readonly meta = byId('drift-meta');
  private readonly summary = byId('drift-summary');
  private readonly histBox = byId('hist-chart');
  private readonly ecdfBox = byId('ecdf-chart');
  private readonly histNote = byId('hist-note');
  private readonly alarmsEmpty = byId('alarms-empty');
  private readonly alarms: KeyedRows<{ alarm: AlarmView; retrain: RetrainView | undefined }, AlarmRow>;
  private hist: Chart | undefined;
  private ecdf: Chart | undefined;
  private group: string | null = null;
  private feature: Feature = FEATURES[0];
  private featurePicked = false;
  private groupKeys = '';

  constructor(private readonly state: ClientState) {
    const tbody = byId('feature-rows');
    this.rows = FEATURES.map((f) => new FeatureRow(f, (picked) => this.pickFeature(picked)));
    for (const r of this.rows) tbody.append(r.el);
    for (const f of FEATURES) {
      const o = h('option', undefined, f);
      o.value = f;
      this.featureSelect.append(o);
    }
    this.featureSelect.addEventListener('change', () =>
      this.pickFeature(this.featureSelect.value as Feature),
    );
    this.groupSelect.addEventListener('change', () => {
      this.group = this.groupSelect.value;
      this.redraw();
    });
    this.alarms = new KeyedRows(
      byId('alarm-rows'),
      (x) => x.alarm.key,
      () => new AlarmRow(),
    );
  }

  private pickFeature(f: Feature): void {
    this.feature = f;
    this.featurePicked = true;
    this.redraw();
  }

  private redraw(): void {
    this.drawGroup();
  }

  private currentGroup(): DriftGroupView | undefined {
    const groups = this.state.snapshot?.drift ?? [];
    if (groups.length === 0) return undefined;
    if (this.group !== null) {
      const g = groups.find((x) => x.groupKey === this.group);
      if (g !== undefined) return g;
    }
    const pick =
      groups.find((g) => g.groupKey === 'all') ?? [...groups].sort((a, b) => b.receivedAt - a.receivedAt)[0];
    this.group = pick?.groupKey ?? null;
    return pick;
  }

  private syncGroupOptions(groups: readonly DriftGroupView[]): void {
    const keys = groups.map((g) => g.groupKey).sort();
    const joined = keys.join('\u0000');
    if (joined !== this.groupKeys) {
      this.groupKeys = joined;
      this.groupSelect.replaceChildren(
        ...keys.map((k) => {
          const o = h('option', undefined, k === 'all' ? 'all machines' : k);
          o.value = k;
          return o;
        }),
      );
    }
    if (this.group !== null && this.groupSelect.value !== this.group) this.groupSelect.value = this.group;
    this.groupSelect.disabled = keys.length <= 1;
  }

  private drawGroup(): void {
    const s = this.state.snapshot;
    if (s === null) return;
    const g = this.currentGroup();
    this.syncGroupOptions(s.drift);
    if (g === undefined) {
      setText(this.meta, 'The edge worker publishes a result per tested window on driftline/drift/window.');
      setText(this.summary, 'No drift window yet');
      setClassName(this.summary, 'pill pill-muted');
      for (const r of this.rows) r.update(undefined, undefined);
      this.drawDistribution(undefined);
      return;
    }
    const drifted = g.features.filter((f) => f.drifted);
    if (!this.featurePicked && drifted.length > 0) {
      const top = [...drifted].sort((a, b) => (b.statistic ?? 0) - (a.statistic ?? 0))[0];
      if (top !== undefined) this.feature = top.feature;
    }
    setText(
      this.meta,
      `window #${g.windowIndex} · samples ${g.from.sampleIndex}–${g.to.sampleIndex} · ` +
        `champion ${version(g.modelVersion)} · ${g.workerId} · ${clock(g.publishedAt)}`,
    );
    setText(
      this.summary,
      drifted.length === 0
        ? 'No drift'
        : `${drifted.length} feature${drifted.length === 1 ? '' : 's'} drifted`,
    );
    setClassName(this.summary, `pill ${drifted.length === 0 ? 'pill-ok' : 'pill-bad'}`);
    const byFeature = new Map(g.features.map((f) => [f.feature, f]));
    for (const r of this.rows) {
      r.update(byFeature.get(r.feature), g.history[r.feature]);
      r.select(r.feature === this.feature);
    }
    if (this.featureSelect.value !== this.feature) this.featureSelect.value = this.feature;
    this.drawDistribution(g);
  }

  private drawDistribution(g: DriftGroupView | undefined): void {
    const h0 = g?.histograms[this.feature];
    if (this.hist === undefined || this.ecdf === undefined) return;
    if (h0 === undefined) {
      this.hist.setData([[], [], []]);
      this.ecdf.setData([[], [], []]);
      setText(this.histNote, g === undefined ? '' : `· no histogram of ${this.feature} in the latest window`);
      return;
    }
    const f = g?.features.find((x) => x.feature === this.feature);
    setText(
      this.histNote,
      `· ${this.feature}, window ` +
        `#${g?.histogramsWindow ?? '?'}${f?.statistic != null ? ` · KS D = ${f.statistic.toFixed(3)}` : ''}`,
    );
    this.hist.setData([h0.edges, stepShares(h0.reference), stepShares(h0.current)]);
    this.ecdf.setData([h0.edges, cumulativeShares(h0.reference), cumulativeShares(h0.current)]);
  }

  private drawAlarms(): void {
    const s = this.state.snapshot;
    if (s === null) return;
    const index = new RetrainIndex(s.retrains);
    const items = s.alarms
      .slice(-MAX_ALARM_ROWS)
      .reverse()
      .map((alarm) => ({ alarm, retrain: index.forAlarm(alarm) }));
    this.alarms.sync(items);
    show(this.alarmsEmpty, items.length === 0);
  }

  /** Called when the view becomes visible (charts need a laid-out container). */
  private ensureCharts(): void {
    for (const r of this.rows) r.ensureChart();
    this.hist ??= histogramChart(this.histBox, widthOf(this.histBox), 190);
    this.ecdf ??= ecdfChart(this.ecdfBox, widthOf(this.ecdfBox), 150);
  }

  render(): void {
    this.ensureCharts();
    const epoch = this.seen.newEpoch(this.state);
    const drift = this.seen.changed(this.state, 'drift');
    const alarms = this.seen.changed(this.state, 'alarms', 'retrains');
    if (epoch || drift) this.drawGroup();
    if (epoch || alarms) this.drawAlarms();
  }

  /** Forces a full redraw next time (tab switch). */
  invalidate(): void {
    this.seen.reset();
  }

  resize(): void {
    if (this.hist !== undefined) this.hist.setSize({ width: widthOf(this.histBox), height: 190 });
    if (this.ecdf !== undefined) this.ecdf.setSize({ width: widthOf(this.ecdfBox), height: 150 });
  }
}
