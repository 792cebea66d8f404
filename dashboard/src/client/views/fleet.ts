import type { DeadLetterView, MachineView } from '../../shared/view.ts';
import {
  byId,
  cell,
  h,
  KeyedRows,
  setClass,
  setClassName,
  setText,
  setSegment,
  setTitle,
  show,
  Slot,
} from '../dom.ts';
import { ago, clock, collator, count, DASH, rate, reading } from '../format.ts';
import { Seen, type ClientState } from '../state.ts';

/** One machine's row: built once, then only its text nodes and classes change. */
class MachineRow {
  readonly el: HTMLTableRowElement;
  private readonly idCell: HTMLTableCellElement;
  private readonly status = h('span', 'badge');
  private readonly mode = new Slot();
  private readonly pred = h('span', 'badge');
  private readonly probCell: HTMLTableCellElement;
  private readonly probs: [HTMLSpanElement, HTMLSpanElement, HTMLSpanElement];
  private readonly features = Array.from({ length: 9 }, () => new Slot());
  private readonly rate = new Slot();
  private readonly seen = new Slot();
  lastSeen = 0;
  attention = false;

  constructor(readonly id: string) {
    this.idCell = h('td', 'mono', id);
    this.idCell.title = id;
    this.probs = [h('span', 'p-low'), h('span', 'p-med'), h('span', 'p-high')];
    this.probCell = h('td', undefined, h('div', 'probs', ...this.probs));
    this.el = h(
      'tr',
      undefined,
      this.idCell,
      h('td', 'status-cell', this.status),
      cell(this.mode),
      h('td', undefined, this.pred),
      this.probCell,
      ...this.features.map((s) => cell(s, 'num')),
      cell(this.rate, 'num'),
      cell(this.seen, 'num'),
    );
  }

  update(m: MachineView, now: number): void {
    const faulty = m.faults.length > 0;
    this.attention = faulty || m.stale;
    setText(this.status, m.stale ? 'Stale' : faulty ? 'Faulty' : m.features === null ? 'No data' : 'OK');
    setClassName(
      this.status,
      `badge ${m.stale ? 'badge-warn' : faulty ? 'badge-bad' : m.features === null ? 'badge-plain' : 'badge-ok'}`,
    );
    setTitle(this.status, m.faults.join('\n') || (m.stale ? 'no message recently' : ''));
    setClass(this.el, 'stale', m.stale);
    setClass(this.el, 'faulty', faulty);
    this.mode.set(m.mode ?? DASH);
    const p = m.prediction;
    setText(this.pred, p?.efficiency ?? DASH);
    setClassName(this.pred, `badge ${p === null ? 'badge-plain' : `eff-${p.efficiency}`}`);
    const probs = p?.probabilities ?? [0, 0, 0];
    let start = 0;
    for (let i = 0; i < 3; i++) {
      setSegment(this.probs[i] as HTMLSpanElement, start, probs[i] ?? 0);
      start += probs[i] ?? 0;
    }
    setTitle(
      this.probCell,
      p === null
        ? ''
        : `Low ${(probs[0] * 100).toFixed(0)}% · Medium ${(probs[1] * 100).toFixed(0)}% · High ${(probs[2] * 100).toFixed(0)}% (model v${p.modelVersion}, ${p.latencyMs.toFixed(1)} ms)`,
    );
    for (let i = 0; i < this.features.length; i++) (this.features[i] as Slot).set(reading(m.features?.[i]));
    this.rate.set(rate(m.ratePerSec));
    this.lastSeen = m.lastSeen;
    this.tick(now);
  }

  tick(now: number): void {
    this.seen.set(ago(now - this.lastSeen));
  }
}

class DeadLetterRow {
  readonly el: HTMLTableRowElement;
  private readonly time = new Slot();
  private readonly machine = h('td', 'mono');
  private readonly reason = new Slot();
  private readonly detail = h('td');
  constructor() {
    this.el = h('tr', undefined, cell(this.time), this.machine, cell(this.reason), this.detail);
  }
  update(d: DeadLetterView): void {
    this.time.set(clock(d.at));
    setText(this.machine, d.machineId ?? DASH);
    setTitle(this.machine, d.machineId ?? d.topic);
    this.reason.set(d.reason);
    setText(this.detail, d.detail);
    setTitle(
      this.detail,
      `${d.detail}\n${d.source} · ${d.topic} · ${d.payloadBytes} bytes\n${d.payloadPreview}`,
    );
  }
}

class ReasonRow {
  readonly el: HTMLTableRowElement;
  private readonly reason = new Slot();
  private readonly here = new Slot();
  private readonly edge = new Slot();
  constructor() {
    this.el = h('tr', undefined, cell(this.reason), cell(this.here, 'num'), cell(this.edge, 'num'));
  }
  update(r: { reason: string; here: number; edge: number | undefined }): void {
    this.reason.set(r.reason);
    this.here.set(count(r.here));
    this.edge.set(r.edge === undefined ? DASH : count(r.edge));
  }
}

class AttentionRow {
  readonly el: HTMLTableRowElement;
  private readonly id = h('td', 'mono');
  private readonly why = h('td');
  constructor() {
    this.el = h('tr', undefined, this.id, this.why);
  }
  update(x: { m: MachineView; now: number }): void {
    const { m } = x;
    setText(this.id, m.id);
    setTitle(this.id, m.id);
    const reasons = [
      ...(m.stale ? [`no message for ${ago(x.now - m.lastSeen).replace(' ago', '')}`] : []),
      ...m.faults,
    ];
    const text = reasons.join(' · ');
    setText(this.why, text);
    setTitle(this.why, reasons.join('\n'));
    setClass(this.el, 'stale-only', m.stale && m.faults.length === 0);
  }
}

/** Every machine with its latest reading, prediction, rate and health; dead letters by reason. */
export class FleetView {
  private readonly seen = new Seen();
  private readonly tbody = byId('fleet-rows');
  private readonly rows = new Map<string, MachineRow>();
  /** Row ids in display order (natural sort of machine ids). */
  private readonly order: string[] = [];
  private readonly pending = new Set<string>();
  private all = true;
  private filter = '';
  private attentionOnly = false;
  private readonly reasons = new KeyedRows(
    byId('deadletter-reasons'),
    (r: { reason: string; here: number; edge: number | undefined }) => r.reason,
    () => new ReasonRow(),
  );
  private readonly attention = new KeyedRows(
    byId('attention-rows'),
    (x: { m: MachineView; now: number }) => x.m.id,
    () => new AttentionRow(),
  );
  private readonly recent = new KeyedRows(
    byId('deadletter-recent'),
    (d: DeadLetterView & { k: string }) => d.k,
    () => new DeadLetterRow(),
  );

  constructor(private readonly state: ClientState) {
    state.onMachines((ids) => {
      if (ids === null) this.all = true;
      else for (const id of ids) this.pending.add(id);
    });
    const filter = byId<HTMLInputElement>('fleet-filter');
    filter.addEventListener('input', () => {
      this.filter = filter.value.trim().toLowerCase();
      this.applyFilter();
    });
    const attention = byId<HTMLInputElement>('fleet-attention');
    attention.addEventListener('change', () => {
      this.attentionOnly = attention.checked;
      this.applyFilter();
    });
  }

  private visible(row: MachineRow): boolean {
    if (this.attentionOnly && !row.attention) return false;
    return this.filter === '' || row.id.toLowerCase().includes(this.filter);
  }

  private applyFilter(): void {
    for (const row of this.rows.values()) show(row.el, this.visible(row));
  }

  private insert(id: string): MachineRow {
    const row = new MachineRow(id);
    this.rows.set(id, row);
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (collator.compare(this.order[mid] as string, id) < 0) lo = mid + 1;
      else hi = mid;
    }
    const before = this.order[lo];
    this.order.splice(lo, 0, id);
    this.tbody.insertBefore(row.el, before === undefined ? null : (this.rows.get(before)?.el ?? null));
    return row;
  }

  private drawMachines(): void {
    const now = this.state.now();
    if (this.all) {
      this.all = false;
      this.pending.clear();
      for (const [id, row] of this.rows) {
        if (!this.state.machines.has(id)) {
          row.el.remove();
          this.rows.delete(id);
          this.order.splice(this.order.indexOf(id), 1);
        }
      }
      for (const m of this.state.machines.values()) this.drawMachine(m, now);
    } else {
      for (const id of this.pending) {
        const m = this.state.machines.get(id);
        if (m !== undefined) this.drawMachine(m, now);
      }
      this.pending.clear();
    }
    let stale = 0;
    let faulty = 0;
    for (const m of this.state.machines.values()) {
      if (m.stale) stale++;
      else if (m.faults.length > 0) faulty++;
    }
    const total = this.state.machines.size;
    setText(byId('fleet-total'), count(total));
    setText(byId('fleet-live'), count(total - stale));
    setText(byId('fleet-stale'), count(stale));
    setText(byId('fleet-faulty'), count(faulty));
    show(byId('fleet-empty'), total === 0);
    this.drawAttention(now);
  }

  private drawAttention(now: number): void {
    const items: { m: MachineView; now: number }[] = [];
    for (const m of this.state.machines.values()) if (m.stale || m.faults.length > 0) items.push({ m, now });
    items.sort((a, b) => b.m.faults.length - a.m.faults.length || collator.compare(a.m.id, b.m.id));
    this.attention.sync(items.slice(0, 12));
    show(byId('attention-empty'), items.length === 0);
  }

  private drawMachine(m: MachineView, now: number): void {
    const row = this.rows.get(m.id) ?? this.insert(m.id);
    row.update(m, now);
    show(row.el, this.visible(row));
  }

  private drawDeadLetters(): void {
    const d = this.state.snapshot?.deadLetters;
    if (d === undefined) return;
    setText(byId('fleet-deadletters'), count(d.total));
    const keys = new Set([...Object.keys(d.byReason), ...Object.keys(d.edgeByReason)]);
    const items = [...keys]
      .map((reason) => ({ reason, here: d.byReason[reason] ?? 0, edge: d.edgeByReason[reason] }))
      .sort((a, b) => b.here + (b.edge ?? 0) - (a.here + (a.edge ?? 0)) || a.reason.localeCompare(b.reason));
    this.reasons.sync(items);
    show(byId('deadletter-empty'), items.length === 0);
    this.recent.sync(d.recent.slice(0, 10).map((x, i) => ({ ...x, k: `${x.at}|${d.total - i}` })));
  }

  render(): void {
    const epoch = this.seen.newEpoch(this.state);
    const machines = this.seen.changed(this.state, 'machines');
    const dl = this.seen.changed(this.state, 'deadLetters');
    if (epoch || machines || this.all || this.pending.size > 0) this.drawMachines();
    if (epoch || dl) this.drawDeadLetters();
  }

  /** Once a second: ages only. */
  tick(): void {
    const now = this.state.now();
    for (const row of this.rows.values()) row.tick(now);
  }

  invalidate(): void {
    this.seen.reset();
    this.all = true;
  }
}
