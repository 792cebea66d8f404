import type { ModelMetrics } from '../../../../common/events/schemas.ts';
import type { AliasChange, ModelVersion } from '../../../../common/registry/types.ts';
import type { RetrainView, SessionInfo, WorkerView } from '../../shared/view.ts';
import {
  byId,
  cell,
  h,
  KeyedRows,
  setClassName,
  setText,
  setTitle,
  setWidthPct,
  show,
  Slot,
} from '../dom.ts';
import { DASH, dateTime, num, pct } from '../format.ts';
import { Seen, type ClientState } from '../state.ts';

/** Human name of a tfjs backend. */
export function backendName(b: string | undefined): string {
  if (b === undefined || b === '') return DASH;
  if (b === 'tensorflow') return 'tfjs-node';
  if (b === 'wasm') return 'WASM';
  if (b === 'cpu') return 'CPU (pure JS)';
  return b;
}

/**
 * A registered version's accuracy or macro-F1. The bootstrap records `accuracy`
 * and `macroF1`; the retrainer records `holdout_accuracy` / `holdout_macro_f1`
 * (the champion-vs-challenger holdout its decision used) and `validation_*`.
 */
export function versionMetric(
  metrics: Readonly<Record<string, number>>,
  name: 'accuracy' | 'macroF1',
): number | undefined {
  const snake = name === 'accuracy' ? 'accuracy' : 'macro_f1';
  return metrics[name] ?? metrics[`holdout_${snake}`] ?? metrics[`validation_${snake}`];
}

function metrics(v: string | null, m: ModelMetrics | null): string {
  if (m === null) return v === null ? DASH : `v${v}`;
  return `${v === null ? '' : `v${v} · `}acc ${m.accuracy.toFixed(3)} · F1 ${m.macroF1.toFixed(3)}`;
}

class RetrainRow {
  readonly el: HTMLTableRowElement;
  private readonly time = new Slot();
  private readonly kind = h('span', 'badge');
  private readonly trigger = h('td');
  private readonly champion = new Slot();
  private readonly challenger = new Slot();
  private readonly outcome = h('span', 'badge');
  private readonly why = h('td');
  constructor() {
    this.el = h(
      'tr',
      undefined,
      cell(this.time),
      h('td', undefined, this.kind),
      this.trigger,
      cell(this.champion),
      cell(this.challenger),
      h('td', undefined, this.outcome),
      this.why,
    );
  }
  update(r: RetrainView): void {
    this.time.set(dateTime(r.requestedAt ?? r.decidedAt));
    setText(this.kind, r.kind ?? DASH);
    setClassName(
      this.kind,
      `badge ${r.kind === 'covariate' ? 'badge-warn' : r.kind === 'concept' ? 'badge-info' : 'badge-plain'}`,
    );
    const trig =
      r.kind === 'concept'
        ? `live accuracy ${pct(r.liveAccuracy)} vs ${pct(r.validationAccuracy)}`
        : r.features.length > 0
          ? r.features.map((f) => f.feature).join(', ')
          : DASH;
    setText(this.trigger, trig);
    setTitle(
      this.trigger,
      `${trig}${r.groupKey !== null ? `\ngroup ${r.groupKey}` : ''}\ncorrelation ` +
        `${r.correlationId}${r.requestId !== null ? `\nrequest ${r.requestId}` : ''}`,
    );
    this.champion.set(metrics(r.championVersion, r.championMetrics));
    this.challenger.set(
      r.outcome === 'pending' ? 'training…' : metrics(r.candidateVersion, r.candidateMetrics),
    );
    setText(
      this.outcome,
      r.outcome === 'pending'
        ? 'pending'
        : r.outcome === 'promoted'
          ? `promoted v${r.candidateVersion ?? '?'}`
          : 'rejected',
    );
    setClassName(
      this.outcome,
      `badge ${r.outcome === 'promoted' ? 'badge-ok' : r.outcome === 'rejected' ? 'badge-plain' : 'badge-warn'}`,
    );
    setText(this.why, r.reason ?? DASH);
    setTitle(this.why, r.reason ?? '');
  }
}

class VersionRow {
  readonly el: HTMLTableRowElement;
  private readonly v = new Slot();
  private readonly status = h('span', 'badge');
  private readonly created = new Slot();
  private readonly acc = new Slot();
  private readonly f1 = new Slot();
  private readonly source = h('td');
  constructor() {
    this.el = h(
      'tr',
      undefined,
      cell(this.v),
      h('td', undefined, this.status),
      cell(this.created),
      cell(this.acc, 'num'),
      cell(this.f1, 'num'),
      this.source,
    );
  }
  update(m: ModelVersion): void {
    this.v.set(`v${m.version}`);
    setText(this.status, m.status);
    setClassName(
      this.status,
      `badge ${m.status === 'champion' ? 'badge-ok' : m.status === 'rejected' ? 'badge-bad' : 'badge-plain'}`,
    );
    setTitle(this.status, m.rejectedReason ?? '');
    this.created.set(dateTime(m.createdAt));
    this.acc.set(num(versionMetric(m.metrics, 'accuracy'), 3));
    this.f1.set(num(versionMetric(m.metrics, 'macroF1'), 3));
    const src = m.tags['driftline.source'] ?? DASH;
    setText(this.source, src);
    setTitle(
      this.source,
      Object.entries(m.tags)
        .map(([k, v]) => `${k}: ${v}`)
        .join('\n'),
    );
  }
}

class AliasRow {
  readonly el: HTMLTableRowElement;
  private readonly at = new Slot();
  private readonly move = new Slot();
  private readonly action = h('span', 'badge');
  private readonly by = h('td');
  private readonly reason = h('td');
  constructor() {
    this.el = h(
      'tr',
      undefined,
      cell(this.at),
      cell(this.move),
      h('td', undefined, this.action),
      this.by,
      this.reason,
    );
  }
  update(c: AliasChange): void {
    this.at.set(dateTime(c.at));
    this.move.set(`${c.from === undefined ? '∅' : `v${c.from}`} → v${c.to}`);
    setText(this.action, c.action);
    setClassName(this.action, `badge ${c.action === 'rollback' ? 'badge-bad' : 'badge-ok'}`);
    setText(this.by, c.by);
    setTitle(this.by, c.by);
    setText(this.reason, c.reason);
    setTitle(this.reason, c.reason);
  }
}

/** The latest status of the most recently reporting worker. */
export function latestWorker(workers: readonly WorkerView[]): WorkerView | undefined {
  let best: WorkerView | undefined;
  for (const w of workers) if (best === undefined || w.receivedAt > best.receivedAt) best = w;
  return best;
}

export interface ModelViewDeps {
  session: SessionInfo;
  toast(message: string, bad?: boolean): void;
}

/** Champion, backend, live vs validation accuracy, class mix; retrain history; versions and alias moves; rollback. */
export class ModelView {
  private readonly seen = new Seen();
  private readonly retrains = new KeyedRows(
    byId('retrain-rows'),
    (r: RetrainView) => r.key,
    () => new RetrainRow(),
  );
  private readonly versions = new KeyedRows(
    byId('version-rows'),
    (v: ModelVersion) => v.version,
    () => new VersionRow(),
  );
  private readonly aliases = new KeyedRows(
    byId('alias-rows'),
    (c: AliasChange & { k: string }) => c.k,
    () => new AliasRow(),
  );
  private readonly dialog = byId<HTMLDialogElement>('rollback-dialog');
  private readonly openButton = byId<HTMLButtonElement>('rollback-open');
  private busy = false;

  constructor(
    private readonly state: ClientState,
    private readonly deps: ModelViewDeps,
  ) {
    const operator = deps.session.role === 'operator';
    setText(
      byId('rollback-hint'),
      operator
        ? 'Moves the champion alias back; edge workers follow at once.'
        : 'Rollback needs the operator role.',
    );
    this.openButton.addEventListener('click', () => this.openDialog());
    byId('rollback-cancel').addEventListener('click', () => this.dialog.close());
    byId<HTMLFormElement>('rollback-form').addEventListener('submit', (e) => {
      e.preventDefault();
      void this.confirm();
    });
  }

  private champion(): ModelVersion | null {
    return this.state.snapshot?.model.champion ?? null;
  }

  private openDialog(): void {
    const c = this.champion();
    if (c === null || this.deps.session.role !== 'operator') return;
    setText(
      byId('rollback-text'),
      `The champion of ${this.deps.session.modelName} is v${c.version}. Rolling back moves ` +
        `the champion alias to the previous champion and tells every edge worker to switch.`,
    );
    show(byId('rollback-error'), false);
    byId<HTMLInputElement>('rollback-reason').value = '';
    this.dialog.dataset.version = c.version;
    this.dialog.showModal();
  }

  private async confirm(): Promise<void> {
    if (this.busy) return;
    const reason = byId<HTMLInputElement>('rollback-reason').value.trim();
    const err = byId('rollback-error');
    if (reason === '') {
      setText(err, 'Please give a reason.');
      show(err, true);
      return;
    }
    this.busy = true;
    const button = byId<HTMLButtonElement>('rollback-confirm');
    button.disabled = true;
    try {
      const res = await fetch('/api/model/rollback', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': this.deps.session.csrfToken },
        body: JSON.stringify({ reason, expectedVersion: this.dialog.dataset.version }),
        credentials: 'same-origin',
      });
      const body = (await res.json().catch(() => ({}))) as {
        error?: string;
        from?: string;
        to?: string;
        eventPublished?: boolean;
      };
      if (!res.ok) {
        setText(err, body.error ?? `rollback failed (HTTP ${res.status})`);
        show(err, true);
        return;
      }
      this.dialog.close();
      this.deps.toast(
        `Champion rolled back: v${body.from ?? '?'} → v${body.to ?? '?'}${body.eventPublished === false ? ' (event not published; edge follows on its next registry poll)' : ''}`,
      );
    } catch {
      setText(err, 'The dashboard server did not answer.');
      show(err, true);
    } finally {
      this.busy = false;
      button.disabled = false;
    }
  }

  private drawHeadline(): void {
    const s = this.state.snapshot;
    if (s === null) return;
    const c = s.model.champion;
    const w = latestWorker(s.pipeline.workers);
    setText(byId('model-champion'), c === null ? 'none yet' : `v${c.version}`);
    setText(
      byId('model-champion-meta'),
      c === null
        ? `${s.model.name}: no champion promoted`
        : `${s.model.name} · registered ${dateTime(c.createdAt)} · ${c.tags['driftline.source'] ?? 'unknown source'}`,
    );
    const serving = [
      ...new Set(s.pipeline.workers.map((x) => x.modelVersion).filter((v): v is string => v !== null)),
    ];
    const lagging = c !== null && serving.some((v) => v !== c.version);
    const servingEl = byId('model-serving');
    setText(
      servingEl,
      s.pipeline.workers.length === 0
        ? 'No edge worker reporting yet.'
        : `Serving on ${s.pipeline.workers.length} edge worker${s.pipeline.workers.length === 1 ? '' : 's'}: ${serving.map((v) => `v${v}`).join(', ') || 'no model loaded'}${lagging ? ' — not the champion yet' : ''}`,
    );
    setClassName(servingEl, lagging ? 'small warn-text' : 'small');
    this.openButton.disabled = this.deps.session.role !== 'operator' || c === null;
    setText(byId('model-backend'), backendName(w?.backend));
    setText(
      byId('model-backend-meta'),
      w === undefined
        ? 'reported by the edge worker status'
        : `${w.workerId} · bus ${w.bus} · registry ${w.registry}`,
    );
    const live = w?.liveAccuracy ?? s.pipeline.observedAccuracy.accuracy;
    const validation = w?.validationAccuracy ?? c?.metrics.accuracy ?? c?.metrics.validation_accuracy ?? null;
    setText(byId('acc-live'), pct(live));
    setText(byId('acc-val'), pct(validation));
    setWidthPct(byId('acc-live-bar'), live ?? 0);
    setWidthPct(byId('acc-val-bar'), validation ?? 0);
    const obs = s.pipeline.observedAccuracy;
    setText(
      byId('acc-meta'),
      `${w !== undefined ? `edge: ${w.labelled.toLocaleString('en-US')} labelled predictions` : 'no edge status'} ` +
        `· dashboard join: ${pct(obs.accuracy)} over ${obs.labelled} labels`,
    );
    let mix = w?.predictedMix;
    if (mix === undefined) {
      const counts = { Low: 0, Medium: 0, High: 0 };
      let n = 0;
      for (const m of this.state.machines.values()) {
        if (m.prediction !== null) {
          counts[m.prediction.efficiency]++;
          n++;
        }
      }
      mix =
        n === 0
          ? { Low: 0, Medium: 0, High: 0 }
          : { Low: counts.Low / n, Medium: counts.Medium / n, High: counts.High / n };
    }
    setWidthPct(byId('mix-low'), mix.Low);
    setWidthPct(byId('mix-med'), mix.Medium);
    setWidthPct(byId('mix-high'), mix.High);
    setText(byId('mix-low-t'), pct(mix.Low, 0));
    setText(byId('mix-med-t'), pct(mix.Medium, 0));
    setText(byId('mix-high-t'), pct(mix.High, 0));
  }

  private drawTables(): void {
    const s = this.state.snapshot;
    if (s === null) return;
    const retrains = [...s.retrains]
      .sort((a, b) => (b.requestedAt ?? b.decidedAt ?? 0) - (a.requestedAt ?? a.decidedAt ?? 0))
      .slice(0, 50);
    this.retrains.sync(retrains);
    show(byId('retrains-empty'), retrains.length === 0);
    this.versions.sync(s.model.versions.slice(0, 20));
    this.aliases.sync(
      s.model.history
        .slice(0, 20)
        .map((c, i) => ({ ...c, k: `${c.at}|${c.to}|${s.model.history.length - i}` })),
    );
  }

  render(): void {
    const epoch = this.seen.newEpoch(this.state);
    const model = this.seen.changed(this.state, 'model');
    const status = this.seen.changed(this.state, 'workers', 'observedAccuracy');
    const retrains = this.seen.changed(this.state, 'retrains');
    // Without edge status the class mix comes from the machines' latest predictions.
    const machines =
      this.seen.changed(this.state, 'machines') && (this.state.snapshot?.pipeline.workers.length ?? 0) === 0;
    if (epoch || model || status || machines) this.drawHeadline();
    if (epoch || model || retrains) this.drawTables();
  }

  invalidate(): void {
    this.seen.reset();
  }
}
