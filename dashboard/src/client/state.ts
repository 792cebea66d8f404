import type { MachineView, Snapshot, ThroughputPoint, Update } from '../shared/view.ts';

/** Sections of the state; each has a revision the views compare with what they last drew. */
export type Section =
  | 'connections'
  | 'machines'
  | 'deadLetters'
  | 'invalid'
  | 'drift'
  | 'alarms'
  | 'retrains'
  | 'model'
  | 'workers'
  | 'observedAccuracy'
  | 'throughput';

const SECTIONS: readonly Section[] = [
  'connections',
  'machines',
  'deadLetters',
  'invalid',
  'drift',
  'alarms',
  'retrains',
  'model',
  'workers',
  'observedAccuracy',
  'throughput',
];

/**
 * The browser's copy of the server state: a snapshot, then updates merged in.
 * Views read it during an animation frame and redraw only the sections whose
 * revision moved; the fleet view also gets the ids of the machines that changed.
 */
export class ClientState {
  snapshot: Snapshot | null = null;
  readonly machines = new Map<string, MachineView>();
  /** Server clock minus browser clock, ms (for "last seen" ages). */
  clockOffset = 0;
  readonly rev: Record<Section, number> = Object.fromEntries(SECTIONS.map((s) => [s, 0])) as Record<
    Section,
    number
  >;
  /** Incremented by every snapshot: views rebuild from scratch when it moves. */
  epoch = 0;
  private readonly machineListeners: ((ids: readonly string[] | null) => void)[] = [];

  /** `ids` null means every machine (a new snapshot). */
  onMachines(listener: (ids: readonly string[] | null) => void): void {
    this.machineListeners.push(listener);
  }

  now(): number {
    return Date.now() + this.clockOffset;
  }

  applySnapshot(s: Snapshot): void {
    this.snapshot = s;
    this.clockOffset = s.serverTime - Date.now();
    this.machines.clear();
    for (const m of s.machines) this.machines.set(m.id, m);
    this.epoch++;
    for (const k of SECTIONS) this.rev[k]++;
    for (const l of this.machineListeners) l(null);
  }

  applyUpdate(u: Update): void {
    const s = this.snapshot;
    if (s === null) return;
    s.serverTime = u.serverTime;
    this.clockOffset = u.serverTime - Date.now();
    if (u.machines !== undefined && u.machines.length > 0) {
      const ids: string[] = [];
      for (const m of u.machines) {
        this.machines.set(m.id, m);
        ids.push(m.id);
      }
      this.rev.machines++;
      for (const l of this.machineListeners) l(ids);
    }
    if (u.drift !== undefined) {
      for (const g of u.drift) {
        const i = s.drift.findIndex((x) => x.groupKey === g.groupKey);
        if (i >= 0) s.drift[i] = g;
        else s.drift.push(g);
      }
      this.rev.drift++;
    }
    if (u.throughput !== undefined) {
      const last = s.pipeline.throughput[s.pipeline.throughput.length - 1]?.t ?? -1;
      const fresh: ThroughputPoint[] = u.throughput.filter((p) => p.t > last);
      if (fresh.length > 0) {
        s.pipeline.throughput.push(...fresh);
        if (s.pipeline.throughput.length > 300)
          s.pipeline.throughput.splice(0, s.pipeline.throughput.length - 300);
        this.rev.throughput++;
      }
    }
    if (u.connections !== undefined) {
      s.connections = u.connections;
      this.rev.connections++;
    }
    if (u.deadLetters !== undefined) {
      s.deadLetters = u.deadLetters;
      this.rev.deadLetters++;
    }
    if (u.invalid !== undefined) {
      s.invalid = u.invalid;
      this.rev.invalid++;
    }
    if (u.alarms !== undefined) {
      s.alarms = u.alarms;
      this.rev.alarms++;
    }
    if (u.retrains !== undefined) {
      s.retrains = u.retrains;
      this.rev.retrains++;
    }
    if (u.model !== undefined) {
      s.model = u.model;
      this.rev.model++;
    }
    if (u.workers !== undefined) {
      s.pipeline.workers = u.workers;
      this.rev.workers++;
    }
    if (u.observedAccuracy !== undefined) {
      s.pipeline.observedAccuracy = u.observedAccuracy;
      this.rev.observedAccuracy++;
    }
  }
}

/** Remembers which revisions a view drew last. */
export class Seen {
  private readonly last = new Map<Section, number>();
  private epoch = -1;

  /** True when any of `sections` moved since the last call for them (and records the new revisions). */
  changed(state: ClientState, ...sections: Section[]): boolean {
    let any = false;
    for (const s of sections) {
      if (this.last.get(s) !== state.rev[s]) {
        this.last.set(s, state.rev[s]);
        any = true;
      }
    }
    return any;
  }

  /** Forgets everything: the next checks all report a change. */
  reset(): void {
    this.last.clear();
    this.epoch = -1;
  }

  /** True once per snapshot. */
  newEpoch(state: ClientState): boolean {
    if (this.epoch === state.epoch) return false;
    this.epoch = state.epoch;
    return true;
  }
}
