import type { SessionInfo, Snapshot, Update } from '../shared/view.ts';
import { byId, setClassName, setText, setTitle, show } from './dom.ts';
import { count, rate, version } from './format.ts';
import { Seen, ClientState } from './state.ts';
import { DriftView } from './views/drift.ts';
import { FleetView } from './views/fleet.ts';
import { ModelView } from './views/model.ts';
import { connectionClass, PipelineView } from './views/pipeline.ts';

/**
 * The dashboard page: logs in via the session cookie, opens the event stream,
 * merges snapshot and updates into {@link ClientState}, and redraws at most
 * once per animation frame, only the visible view and only what changed.
 */

type Tab = 'drift' | 'fleet' | 'model' | 'pipeline';
const TABS: readonly Tab[] = ['drift', 'fleet', 'model', 'pipeline'];
type StreamState = 'connecting' | 'live' | 'reconnecting';

/** Figures the benchmark and the browser tests read (`window.__driftline`). */
interface DebugStats {
  /** ms from navigation start to the first full render of a snapshot. */
  firstRenderMs: number | null;
  frames: number;
  snapshots: number;
  updates: number;
  /** Durations of the last 600 renders, ms. */
  renderMs: number[];
}

const stats: DebugStats = { firstRenderMs: null, frames: 0, snapshots: 0, updates: 0, renderMs: [] };
(window as unknown as { __driftline: DebugStats }).__driftline = stats;

function toast(message: string, bad = false): void {
  const el = byId('toast');
  setText(el, message);
  setClassName(el, bad ? 'toast toast-bad' : 'toast');
  show(el, true);
  const w = window as unknown as { __toastTimer?: number };
  if (w.__toastTimer !== undefined) clearTimeout(w.__toastTimer);
  w.__toastTimer = window.setTimeout(() => show(el, false), 6000);
}

async function fetchSession(): Promise<SessionInfo | undefined> {
  const res = await fetch('/api/session', { credentials: 'same-origin', cache: 'no-store' });
  if (res.status === 401) return undefined;
  if (!res.ok) throw new Error(`session check failed: HTTP ${res.status}`);
  return (await res.json()) as SessionInfo;
}

function toLogin(): void {
  window.location.assign('/login');
}

class Header {
  private readonly seen = new Seen();
  constructor(private readonly state: ClientState) {}

  render(): void {
    const s = this.state.snapshot;
    if (s === null) return;
    const epoch = this.seen.newEpoch(this.state);
    const model = this.seen.changed(this.state, 'model', 'workers');
    const machines = this.seen.changed(this.state, 'machines');
    const tp = this.seen.changed(this.state, 'throughput');
    const drift = this.seen.changed(this.state, 'drift', 'alarms');
    const conns = this.seen.changed(this.state, 'connections');
    if (epoch || model) {
      const c =
        s.model.champion?.version ??
        s.pipeline.workers.find((w) => w.modelVersion !== null)?.modelVersion ??
        null;
      setText(byId('kpi-champion'), version(c));
    }
    if (epoch || machines) setText(byId('kpi-machines'), count(this.state.machines.size));
    if (epoch || tp)
      setText(
        byId('kpi-rate'),
        rate(s.pipeline.throughput[s.pipeline.throughput.length - 1]?.telemetry ?? 0),
      );
    if (epoch || drift) {
      const drifted = new Set<string>();
      for (const g of s.drift) for (const f of g.features) if (f.drifted) drifted.add(f.feature);
      const el = byId('kpi-drifted');
      setText(el, String(drifted.size));
      setTitle(el, [...drifted].join(', '));
      setText(byId('kpi-alarms'), count(s.alarms.length));
    }
    if (epoch || conns) {
      const m = s.connections.mqtt;
      const el = byId('broker-status');
      setText(
        el,
        m.state === 'connected'
          ? 'Broker connected'
          : m.state === 'error'
            ? 'Broker error'
            : m.state === 'closed'
              ? 'Broker closed'
              : 'Broker reconnecting…',
      );
      setClassName(
        el,
        `pill ${connectionClass(m.state).replace('badge-', 'pill-').replace('pill-plain', 'pill-muted')}`,
      );
      setTitle(el, `${m.target}${m.detail ? ` · ${m.detail}` : ''}`);
    }
  }
}

async function main(): Promise<void> {
  let session: SessionInfo | undefined;
  try {
    session = await fetchSession();
  } catch {
    session = undefined;
  }
  if (session === undefined) return toLogin();
  const me = session;
  setText(byId('user-name'), me.username);
  setText(byId('user-role'), me.role);

  const state = new ClientState();
  const header = new Header(state);
  const views = {
    drift: new DriftView(state),
    fleet: new FleetView(state),
    model: new ModelView(state, { session: me, toast }),
    pipeline: new PipelineView(state),
  };
  let active: Tab = 'drift';
  let scheduled = false;
  let clockDue = false;

  const frame = (): void => {
    scheduled = false;
    if (state.snapshot === null) return;
    const t0 = performance.now();
    header.render();
    views[active].render();
    if (clockDue) {
      clockDue = false;
      if (active === 'fleet') views.fleet.tick();
      if (active === 'pipeline') views.pipeline.tick();
    }
    const t1 = performance.now();
    stats.frames++;
    stats.renderMs.push(t1 - t0);
    if (stats.renderMs.length > 600) stats.renderMs.splice(0, stats.renderMs.length - 600);
    if (stats.firstRenderMs === null) {
      stats.firstRenderMs = t1;
      performance.mark('driftline-first-render');
      document.body.dataset.rendered = 'true';
    }
  };
  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(frame);
  };

  const resizeActive = (): void => {
    if (active === 'drift') views.drift.resize();
    if (active === 'pipeline') views.pipeline.resize();
  };
  const selectTab = (tab: Tab): void => {
    active = tab;
    for (const t of TABS) {
      show(byId(`view-${t}`), t === tab);
      const link = document.querySelector(`.tab[data-tab="${t}"]`);
      if (link !== null) setClassName(link, t === tab ? 'tab active' : 'tab');
    }
    document.body.dataset.tab = tab;
    views[tab].invalidate();
    // Charts of a hidden view could not follow window resizes: fit them now that it is laid out.
    resizeActive();
    schedule();
  };
  const fromHash = (): Tab => {
    const h = window.location.hash.slice(1);
    return (TABS as readonly string[]).includes(h) ? (h as Tab) : 'drift';
  };
  window.addEventListener('hashchange', () => selectTab(fromHash()));
  selectTab(fromHash());

  let resizeTimer: number | undefined;
  window.addEventListener('resize', () => {
    if (resizeTimer !== undefined) clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(resizeActive, 150);
  });
  window.setInterval(() => {
    clockDue = true;
    schedule();
  }, 1000);

  byId('logout').addEventListener('click', () => {
    void fetch('/api/logout', {
      method: 'POST',
      headers: { 'x-csrf-token': me.csrfToken },
      credentials: 'same-origin',
    }).finally(toLogin);
  });

  const setStream = (s: StreamState): void => {
    document.body.dataset.stream = s;
    const pill = byId('stream-status');
    setText(pill, s === 'live' ? 'Live' : s === 'connecting' ? 'Connecting…' : 'Reconnecting…');
    setClassName(pill, `pill ${s === 'live' ? 'pill-ok' : 'pill-warn'}`);
    show(byId('banner'), s === 'reconnecting');
  };

  let source: EventSource | undefined;
  const connect = (): void => {
    const es = new EventSource('/api/events');
    source = es;
    es.addEventListener('snapshot', (e) => {
      state.applySnapshot(JSON.parse((e as MessageEvent<string>).data) as Snapshot);
      stats.snapshots++;
      setStream('live');
      schedule();
    });
    es.addEventListener('update', (e) => {
      state.applyUpdate(JSON.parse((e as MessageEvent<string>).data) as Update);
      stats.updates++;
      schedule();
    });
    es.addEventListener('error', () => {
      setStream(state.snapshot === null && stats.snapshots === 0 ? 'connecting' : 'reconnecting');
      if (es.readyState !== EventSource.CLOSED) return; // the browser retries by itself
      // Closed for good (e.g. 401 after the server restarted): log in again, or retry.
      es.close();
      void fetchSession().then(
        (s) => (s === undefined ? toLogin() : window.setTimeout(connect, 2000)),
        () => window.setTimeout(connect, 2000),
      );
    });
  };
  connect();
  window.addEventListener('pagehide', () => source?.close());
}

void main();
