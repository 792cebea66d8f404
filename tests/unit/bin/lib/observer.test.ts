import { describe, expect, it } from 'vitest';
import { LiveObserver } from '../../../../bin/lib/observer.ts';
import { InProcessBus } from '../../../../common/bus/in-process.ts';

/**
 * The run summary's `labelled` (`npm start -- --exit-after-phases`) is the
 * observer's join of the edge's predictions with the inspection labels. A label
 * is published a fixed delay after its telemetry, so when the edge lags by more
 * than that delay the label reaches the observer before the prediction; it must
 * still be joined (issue 12: 19,608 / 2,918 / 1,595 of ~60,000 labels joined
 * at --rate 2000 / 8000 / max).
 */

const machineIds = ['m-000', 'm-001'];

function observer(maxPending?: number): LiveObserver {
  return new LiveObserver({
    mqttUrl: 'mqtt://unused',
    username: 'dashboard',
    bus: new InProcessBus(),
    phases: [{ name: 'stationary', start: 0, end: 1000, changesAnything: false }],
    machineIds,
    ...(maxPending !== undefined ? { maxPending } : {}),
  });
}

const prediction = (machineId: string, seq: number, efficiency = 'High'): [string, Buffer] => [
  `factory/${machineId}/prediction`,
  Buffer.from(
    JSON.stringify({
      machineId,
      seq,
      ts: 1,
      predictedAt: 2,
      efficiency,
      probabilities: { Low: 0, Medium: 0, High: 1 },
      modelVersion: '1',
      latencyMs: 1,
    }),
  ),
];
const label = (machineId: string, seq: number, efficiency = 'High'): [string, Buffer] => [
  `factory/${machineId}/label`,
  Buffer.from(JSON.stringify({ machineId, seq, efficiency })),
];

describe('LiveObserver join of predictions and labels', () => {
  it('joins a label that arrives before its prediction', () => {
    const o = observer();
    for (let seq = 0; seq < 10; seq++) o.onMessage(...label('m-000', seq));
    for (let seq = 0; seq < 10; seq++) o.onMessage(...prediction('m-000', seq, seq < 5 ? 'High' : 'Low'));
    expect(o.summary().labelled).toBe(10);
    expect(o.summary().accuracy).toBe(0.5);
    expect(o.joinStats()).toMatchObject({ labels: 10, predictions: 10, joined: 10, labelsFirst: 10 });
    expect(o.joinStats().pendingLabels).toBe(0);
  });

  it('joins both orders in one run: joined = labels - evicted - still waiting', () => {
    const o = observer(4);
    // Prediction first for m-000, label first for m-001.
    for (let seq = 0; seq < 3; seq++) {
      o.onMessage(...prediction('m-000', seq));
      o.onMessage(...label('m-000', seq));
      o.onMessage(...label('m-001', seq));
    }
    for (let seq = 0; seq < 3; seq++) o.onMessage(...prediction('m-001', seq));
    // Six labels whose prediction never comes: the buffer (4) evicts two.
    for (let seq = 10; seq < 16; seq++) o.onMessage(...label('m-001', seq));
    const s = o.joinStats();
    expect(s.joined).toBe(6);
    expect(s.evictedLabels).toBe(2);
    expect(s.pendingLabels).toBe(4);
    expect(s.labels).toBe(s.joined + s.evictedLabels + s.pendingLabels);
  });

  it('counts an evicted prediction instead of dropping the whole buffer', () => {
    const o = observer(3);
    for (let seq = 0; seq < 5; seq++) o.onMessage(...prediction('m-000', seq));
    expect(o.joinStats().evictedPredictions).toBe(2);
    for (let seq = 0; seq < 5; seq++) o.onMessage(...label('m-000', seq));
    // seq 0 and 1 lost their prediction to the bound: their labels wait (counted), the other three join.
    expect(o.joinStats()).toMatchObject({ joined: 3, pendingLabels: 2 });
  });
});
