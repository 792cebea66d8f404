import { describe, expect, it } from 'vitest';
import { FEATURES, OPERATION_MODES, SEED_RANGES, VALID_LIMITS } from '../../../../common/schema/features.ts';
import {
  MAX_EXTRA_FIELDS_BYTES,
  MAX_PAYLOAD_BYTES,
  parseTopic,
  validateMessage,
  labelSchema,
  telemetrySchema,
  validateObject,
  type Telemetry,
} from '../../../../common/schema/telemetry.ts';

function telemetry(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Telemetry = {
    machineId: 'm-001',
    seq: 7,
    ts: 1_700_000_000_000,
    operationMode: 'Active',
    temperatureC: 55,
    vibrationHz: 2.5,
    powerKw: 5,
    networkLatencyMs: 20,
    packetLossPct: 1,
    defectRatePct: 3,
    productionSpeedUph: 300,
    maintenanceScore: 0.5,
    errorRatePct: 4,
  };
  return { ...base, ...overrides };
}
const topic = 'factory/m-001/telemetry';
const send = (obj: unknown): ReturnType<typeof validateMessage<'telemetry'>> =>
  validateMessage('telemetry', topic, JSON.stringify(obj));

describe('telemetry schema', () => {
  it('accepts every operation mode with every feature at both ends of its seed range', () => {
    for (const mode of OPERATION_MODES) {
      for (const end of [0, 1] as const) {
        const values = Object.fromEntries(FEATURES.map((f) => [f, SEED_RANGES[f][end]]));
        const r = send(telemetry({ operationMode: mode, ...values }));
        expect(r.ok, JSON.stringify(r)).toBe(true);
      }
    }
  });

  it('accepts values at the validation limits and seq 0', () => {
    for (const f of FEATURES) {
      for (const v of VALID_LIMITS[f]) expect(send(telemetry({ [f]: v, seq: 0 })).ok).toBe(true);
    }
  });

  it('returns typed values', () => {
    const r = send(telemetry());
    if (!r.ok) throw new Error(r.detail);
    expect(r.value.productionSpeedUph).toBe(300);
  });

  it.each([
    ['not JSON', '{"machineId": ', 'not_json'],
    ['an array', '[1,2]', 'not_object'],
    ['a string', '"hello"', 'not_object'],
  ])('rejects %s', (_name, raw, reason) => {
    const r = validateMessage('telemetry', topic, raw);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toBe(reason);
  });

  it.each(FEATURES.map((f) => [f]))('rejects a missing %s', (f) => {
    const obj = telemetry();
    delete obj[f];
    const r = send(obj);
    expect(r).toMatchObject({ ok: false, reason: 'missing_field' });
    if (!r.ok) expect(r.detail).toContain(f);
  });

  it.each(['machineId', 'seq', 'ts', 'operationMode'])('rejects a missing %s', (f) => {
    const obj = telemetry();
    delete obj[f];
    expect(send(obj)).toMatchObject({ ok: false, reason: 'missing_field' });
  });

  it('rejects wrong types', () => {
    expect(send(telemetry({ temperatureC: '55' }))).toMatchObject({ ok: false, reason: 'invalid_type' });
    expect(send(telemetry({ seq: 'x' }))).toMatchObject({ ok: false, reason: 'invalid_type' });
    expect(send(telemetry({ machineId: 5 }))).toMatchObject({ ok: false, reason: 'invalid_type' });
    expect(send(telemetry({ powerKw: null }))).toMatchObject({ ok: false, reason: 'invalid_type' });
  });

  it('rejects NaN and Infinity in objects (JSON cannot carry them, other sources can)', () => {
    expect(validateObject('telemetry', telemetry({ vibrationHz: Number.NaN }))).toMatchObject({
      ok: false,
      reason: 'non_finite',
    });
    expect(validateObject('telemetry', telemetry({ powerKw: Number.POSITIVE_INFINITY }))).toMatchObject({
      ok: false,
      reason: 'non_finite',
    });
    expect(validateObject('telemetry', telemetry({ seq: Number.NEGATIVE_INFINITY }))).toMatchObject({
      ok: false,
      reason: 'non_finite',
    });
  });

  it('rejects NaN written as text in JSON as not JSON', () => {
    expect(validateMessage('telemetry', topic, '{"temperatureC": NaN}')).toMatchObject({
      ok: false,
      reason: 'not_json',
    });
  });

  it.each(FEATURES.map((f) => [f]))('rejects %s out of its plausible range', (f) => {
    const [lo, hi] = VALID_LIMITS[f];
    expect(send(telemetry({ [f]: hi + 1 }))).toMatchObject({ ok: false, reason: 'out_of_range' });
    expect(send(telemetry({ [f]: lo - 1 }))).toMatchObject({ ok: false, reason: 'out_of_range' });
  });

  it('rejects a negative or fractional seq and an unknown operation mode', () => {
    expect(send(telemetry({ seq: -1 }))).toMatchObject({ ok: false, reason: 'out_of_range' });
    expect(send(telemetry({ seq: 1.5 }))).toMatchObject({ ok: false, reason: 'invalid_type' });
    expect(send(telemetry({ operationMode: 'Running' }))).toMatchObject({
      ok: false,
      reason: 'invalid_value',
    });
  });

  it('tolerates small unknown extra fields and rejects them over the size limit', () => {
    expect(send(telemetry({ firmware: '1.2.3' })).ok).toBe(true);
    const big = 'x'.repeat(MAX_EXTRA_FIELDS_BYTES);
    const r = send(telemetry({ blob: big }));
    expect(r).toMatchObject({ ok: false, reason: 'unknown_fields' });
    if (!r.ok) expect(r.detail).toContain('blob');
  });

  it('rejects a machineId that does not match the topic', () => {
    const r = validateMessage('telemetry', 'factory/m-002/telemetry', JSON.stringify(telemetry()));
    expect(r).toMatchObject({ ok: false, reason: 'machine_id_mismatch' });
  });

  it('rejects payloads over the size limit before parsing', () => {
    const r = validateMessage('telemetry', topic, Buffer.alloc(MAX_PAYLOAD_BYTES + 1, 0x20));
    expect(r).toMatchObject({ ok: false, reason: 'payload_too_large' });
  });

  it('rejects a message on a topic of the wrong shape', () => {
    expect(validateMessage('telemetry', 'factory/m-001/label', JSON.stringify(telemetry()))).toMatchObject({
      ok: false,
      reason: 'invalid_topic',
    });
    expect(validateMessage('telemetry', 'factory/a/b/telemetry', JSON.stringify(telemetry()))).toMatchObject({
      ok: false,
      reason: 'invalid_topic',
    });
  });

  it('accepts machine ids with HTML characters (consumers must escape them) but not MQTT wildcards', () => {
    const id = '<img src=x onerror=alert(1)>';
    expect(
      validateMessage('telemetry', `factory/${id}/telemetry`, JSON.stringify(telemetry({ machineId: id })))
        .ok,
    ).toBe(true);
    expect(parseTopic('factory/a+b/telemetry')).toBeUndefined();
    expect(parseTopic('factory/a#/telemetry')).toBeUndefined();
  });
});

describe('label schema', () => {
  const label = { machineId: 'm-001', seq: 3, efficiency: 'High' };
  it('accepts each class', () => {
    for (const efficiency of ['Low', 'Medium', 'High']) {
      expect(
        validateMessage('label', 'factory/m-001/label', JSON.stringify({ ...label, efficiency })).ok,
      ).toBe(true);
    }
  });
  it('rejects an unknown class, a missing seq and a topic mismatch', () => {
    expect(
      validateMessage('label', 'factory/m-001/label', JSON.stringify({ ...label, efficiency: 'Great' })),
    ).toMatchObject({ ok: false, reason: 'invalid_value' });
    expect(
      validateMessage(
        'label',
        'factory/m-001/label',
        JSON.stringify({ machineId: 'm-001', efficiency: 'Low' }),
      ),
    ).toMatchObject({ ok: false, reason: 'missing_field' });
    expect(validateMessage('label', 'factory/m-009/label', JSON.stringify(label))).toMatchObject({
      ok: false,
      reason: 'machine_id_mismatch',
    });
  });
});

describe('validateObject fast path (issue 12)', () => {
  const valid = (): Record<string, unknown> => ({
    machineId: 'm-001',
    seq: 7,
    ts: 1_700_000_000_000,
    operationMode: 'Active',
    ...Object.fromEntries(FEATURES.map((f) => [f, (VALID_LIMITS[f][0] + VALID_LIMITS[f][1]) / 2])),
  });
  const odd: unknown[] = [
    Number.NaN,
    Number.POSITIVE_INFINITY,
    -1,
    -0,
    0,
    0.5,
    1.5,
    2 ** 53,
    2 ** 53 - 1,
    8.64e15,
    8.64e15 + 1,
    1e300,
    '1',
    '',
    null,
    true,
    [],
    {},
    'Active',
    'Idle',
    'Low',
    'High',
    'm-002',
    'a/b',
    'x'.repeat(65),
  ];

  it('accepts exactly what the zod schema accepts, field by field', () => {
    const fields = ['machineId', 'seq', 'ts', 'operationMode', ...FEATURES];
    for (const field of fields) {
      const values = [...odd, ...(FEATURES.includes(field as never) ? VALID_LIMITS[field as never] : [])];
      for (const v of values) {
        const o = { ...valid(), [field]: v };
        expect(validateObject('telemetry', o).ok, `${field} = ${String(v)}`).toBe(
          telemetrySchema.safeParse(o).success,
        );
      }
    }
    for (const field of ['machineId', 'seq', 'efficiency']) {
      for (const v of odd) {
        const o = { machineId: 'm-1', seq: 3, efficiency: 'Medium', [field]: v };
        expect(validateObject('label', o).ok, `${field} = ${String(v)}`).toBe(
          labelSchema.safeParse(o).success,
        );
      }
    }
  });
});
