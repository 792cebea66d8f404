import { describe, expect, it } from 'vitest';
import {
  canPublish,
  canSubscribe,
  filterCovers,
  isValidFilter,
  type AclPolicy,
  type Principal,
} from '../../../broker/src/acl.ts';

const device: Principal = { username: 'dev-m1', role: 'device', machineId: 'm1' };
const inspection: Principal = { username: 'qa', role: 'inspection' };
const edge: Principal = { username: 'edge', role: 'edge' };
const dashboard: Principal = { username: 'dash', role: 'dashboard' };
const retrainer: Principal = { username: 'rt', role: 'retrainer' };
const admin: Principal = { username: 'root', role: 'admin' };
const everyone = [device, inspection, edge, dashboard, retrainer, admin];

const pub = (p: Principal, topic: string, policy?: AclPolicy): boolean =>
  canPublish(p, topic, policy).allowed;
const sub = (p: Principal, filter: string, policy?: AclPolicy): boolean =>
  canSubscribe(p, filter, policy).allowed;

describe('filterCovers (MQTT matching, filter inside filter)', () => {
  it.each([
    ['factory/+/telemetry', 'factory/m1/telemetry', true],
    ['factory/+/telemetry', 'factory/+/telemetry', true],
    ['factory/+/telemetry', 'factory/m1/label', false],
    ['factory/+/telemetry', 'factory/m1/telemetry/extra', false],
    ['factory/+/telemetry', 'factory/#', false],
    ['factory/#', 'factory', true],
    ['factory/#', 'factory/m1/telemetry', true],
    ['factory/#', 'factory/+/#', true],
    ['factory/#', 'factoryx/a', false],
    ['factory/#', '#', false],
    ['#', 'anything/at/all', true],
    ['#', '$SYS/broker/x', false],
    ['+/x', '$SYS/x', false],
    ['$#', '$SYS/x', true],
    ['$#', 'factory/x', false],
    ['factory/m1/#', 'factory/m1/prediction', true],
    ['factory/m1/#', 'factory/m2/prediction', false],
    ['factory/m1/#', 'factory/+/prediction', false],
  ])('%s covers %s: %s', (allowed, requested, expected) => {
    expect(filterCovers(allowed, requested)).toBe(expected);
  });

  it('validates filters', () => {
    expect(isValidFilter('factory/+/telemetry')).toBe(true);
    expect(isValidFilter('factory/#')).toBe(true);
    expect(isValidFilter('factory/#/x')).toBe(false);
    expect(isValidFilter('factory/m+/x')).toBe(false);
    expect(isValidFilter('factory/m#')).toBe(false);
    expect(isValidFilter('')).toBe(false);
  });
});

describe('publish', () => {
  it('nobody publishes to $SYS, not even admin', () => {
    for (const p of everyone) {
      expect(pub(p, '$SYS/broker/uptime')).toBe(false);
      expect(pub(p, '$SYS')).toBe(false);
    }
    expect(canPublish(admin, '$SYS/x')).toEqual({
      allowed: false,
      reason: '$SYS topics are reserved for the broker',
    });
  });

  it('a device publishes only its own telemetry', () => {
    expect(pub(device, 'factory/m1/telemetry')).toBe(true);
    expect(pub(device, 'factory/m2/telemetry')).toBe(false);
    expect(pub(device, 'factory/m1/label')).toBe(false);
    expect(pub(device, 'factory/m1/prediction')).toBe(false);
    expect(pub(device, 'factory/m1/telemetry/x')).toBe(false);
    expect(pub(device, 'factory/m10/telemetry')).toBe(false);
    expect(pub(device, 'driftline/dead-letter')).toBe(false);
    expect(pub(device, 'factory/+/telemetry')).toBe(false);
  });

  it('a device without a machine id (or with a wildcard one) publishes nothing', () => {
    expect(pub({ username: 'x', role: 'device' }, 'factory/m1/telemetry')).toBe(false);
    expect(pub({ username: 'x', role: 'device', machineId: '+' }, 'factory/m1/telemetry')).toBe(false);
    expect(sub({ username: 'x', role: 'device', machineId: '#' }, 'factory/#')).toBe(false);
  });

  it('inspection publishes labels for any machine and nothing else', () => {
    expect(pub(inspection, 'factory/m1/label')).toBe(true);
    expect(pub(inspection, 'factory/m2/label')).toBe(true);
    expect(pub(inspection, 'factory/m1/telemetry')).toBe(false);
    expect(pub(inspection, 'factory/m1/prediction')).toBe(false);
    expect(pub(inspection, 'driftline/alarm')).toBe(false);
  });

  it('edge publishes predictions and driftline/#', () => {
    expect(pub(edge, 'factory/m1/prediction')).toBe(true);
    expect(pub(edge, 'driftline/dead-letter')).toBe(true);
    expect(pub(edge, 'driftline/alarms/drift')).toBe(true);
    expect(pub(edge, 'factory/m1/telemetry')).toBe(false);
    expect(pub(edge, 'factory/m1/label')).toBe(false);
    expect(pub(edge, 'other/topic')).toBe(false);
  });

  it('dashboard publishes nothing', () => {
    for (const t of ['factory/m1/telemetry', 'factory/m1/label', 'driftline/x', 'dashboard/x'])
      expect(pub(dashboard, t)).toBe(false);
  });

  it('retrainer publishes only driftline/#', () => {
    expect(pub(retrainer, 'driftline/models/promoted')).toBe(true);
    expect(pub(retrainer, 'factory/m1/prediction')).toBe(false);
  });

  it('admin publishes anything but $SYS', () => {
    expect(pub(admin, 'factory/m1/telemetry')).toBe(true);
    expect(pub(admin, 'anything/else')).toBe(true);
    expect(pub(admin, '$custom/x')).toBe(true);
  });
});

describe('subscribe', () => {
  it('a device subscribes only inside its own factory/<id>/#', () => {
    expect(sub(device, 'factory/m1/#')).toBe(true);
    expect(sub(device, 'factory/m1/prediction')).toBe(true);
    expect(sub(device, 'factory/m2/#')).toBe(false);
    expect(sub(device, 'factory/+/prediction')).toBe(false);
    expect(sub(device, 'factory/#')).toBe(false);
    expect(sub(device, '#')).toBe(false);
    expect(sub(device, 'driftline/#')).toBe(false);
  });

  it('the policy can forbid devices to subscribe at all', () => {
    expect(sub(device, 'factory/m1/#', { devicesMaySubscribeOwn: false })).toBe(false);
    expect(sub(device, 'factory/m1/prediction', { devicesMaySubscribeOwn: false })).toBe(false);
  });

  it('inspection subscribes to nothing', () => {
    expect(sub(inspection, 'factory/+/label')).toBe(false);
    expect(sub(inspection, 'factory/#')).toBe(false);
  });

  it('edge subscribes to telemetry and labels of any machine', () => {
    expect(sub(edge, 'factory/+/telemetry')).toBe(true);
    expect(sub(edge, 'factory/+/label')).toBe(true);
    expect(sub(edge, 'factory/m1/telemetry')).toBe(true);
    expect(sub(edge, 'factory/#')).toBe(false);
    expect(sub(edge, 'factory/+/prediction')).toBe(false);
    expect(sub(edge, 'factory/+/+')).toBe(false);
    expect(sub(edge, '#')).toBe(false);
  });

  it('dashboard subscribes to factory/# and driftline/#', () => {
    expect(sub(dashboard, 'factory/#')).toBe(true);
    expect(sub(dashboard, 'factory/+/prediction')).toBe(true);
    expect(sub(dashboard, 'driftline/#')).toBe(true);
    expect(sub(dashboard, '#')).toBe(false);
    expect(sub(dashboard, '$SYS/#')).toBe(false);
    expect(sub(dashboard, 'other/#')).toBe(false);
  });

  it('retrainer subscribes to driftline/# only', () => {
    expect(sub(retrainer, 'driftline/#')).toBe(true);
    expect(sub(retrainer, 'driftline/models/+')).toBe(true);
    expect(sub(retrainer, 'factory/+/label')).toBe(false);
  });

  it('admin subscribes to everything, $SYS included', () => {
    expect(sub(admin, '#')).toBe(true);
    expect(sub(admin, '$SYS/#')).toBe(true);
    expect(sub(admin, 'factory/+/telemetry')).toBe(true);
  });

  it('refuses malformed filters for everyone', () => {
    for (const p of everyone) {
      expect(sub(p, 'factory/#/x')).toBe(false);
      expect(sub(p, '')).toBe(false);
    }
  });

  it('refuses shared-subscription filters (aedes would treat them as literal topics)', () => {
    expect(sub(edge, '$share/workers/factory/+/telemetry')).toBe(false);
    expect(sub(dashboard, '$share/g/factory/#')).toBe(false);
  });

  it('explains a refusal', () => {
    expect(canSubscribe(edge, 'factory/#')).toEqual({
      allowed: false,
      reason: 'role edge may not subscribe to this filter',
    });
  });
});
