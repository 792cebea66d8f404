import type { AlarmView, RetrainView } from './view.ts';

/**
 * Joins drift alarms with the retrains they caused. An alarm that opened a
 * drift episode carries the `requestId` of the retrain request it emitted; an
 * alarm that attached to an open episode carries only the episode's
 * `correlationId`, which the request and every model event of that flow share.
 * Pure, shared by the server tests and the browser.
 */
export class RetrainIndex {
  private readonly byRequest = new Map<string, RetrainView>();
  private readonly byCorrelation = new Map<string, RetrainView>();

  constructor(retrains: readonly RetrainView[]) {
    for (const r of retrains) {
      if (r.requestId !== null) this.byRequest.set(r.requestId, r);
      // The newest retrain of a correlation id wins (a rerun after an expired episode keeps the id).
      const prev = this.byCorrelation.get(r.correlationId);
      if (
        prev === undefined ||
        (r.requestedAt ?? r.decidedAt ?? 0) >= (prev.requestedAt ?? prev.decidedAt ?? 0)
      )
        this.byCorrelation.set(r.correlationId, r);
    }
  }

  /** The retrain an alarm caused (or joined), if the dashboard saw it. */
  forAlarm(alarm: Pick<AlarmView, 'requestId' | 'correlationId'>): RetrainView | undefined {
    if (alarm.requestId !== null) {
      const r = this.byRequest.get(alarm.requestId);
      if (r !== undefined) return r;
    }
    return this.byCorrelation.get(alarm.correlationId);
  }
}

/** A short readable state of a retrain for the alarm timeline. */
export function describeRetrain(r: RetrainView | undefined): string {
  if (r === undefined) return 'no retrain seen';
  switch (r.outcome) {
    case 'pending':
      return r.requestedAt === null ? 'retrain pending' : 'retrain requested';
    case 'promoted':
      return `promoted v${r.candidateVersion ?? '?'}`;
    case 'rejected':
      return `challenger v${r.candidateVersion ?? '?'} rejected`;
  }
}
