/**
 * The MQTT accounts the pipeline benchmark uses, on either broker: the
 * project's aedes broker (provisioned in memory by `broker-role.ts` with these
 * passwords) or Mosquitto (`scripts/services/mosquitto.sh`: every password is
 * `<prefix>-<username>`, devices `m-000`…). Usernames match the roles of
 * `broker/src/acl.ts`: devices publish their telemetry, `inspection` the
 * labels, `edge` reads both and publishes predictions, `dashboard` reads
 * everything (the prediction sink), `bridge` reads telemetry and labels.
 */

export type AccountRole = 'device' | 'inspection' | 'edge' | 'dashboard' | 'bridge';

export interface Account {
  username: string;
  password: string;
  role: AccountRole;
  machineId?: string;
}

export interface Accounts {
  devices: Record<string, string>;
  inspection: { username: string; password: string };
  edge: { username: string; password: string };
  dashboard: { username: string; password: string };
  bridge: { username: string; password: string };
  /** Every account, for provisioning the aedes broker. */
  all: Account[];
}

/** Passwords `<prefix>-<username>` (Mosquitto's development accounts; fine for the loopback aedes run too). */
export function benchAccounts(machineIds: readonly string[], prefix: string): Accounts {
  const pw = (u: string): string => `${prefix}-${u}`;
  const service = (u: string): { username: string; password: string } => ({ username: u, password: pw(u) });
  const all: Account[] = [
    ...machineIds.map((id) => ({ username: id, password: pw(id), role: 'device' as const, machineId: id })),
    { username: 'inspection', password: pw('inspection'), role: 'inspection' },
    { username: 'edge', password: pw('edge'), role: 'edge' },
    { username: 'dashboard', password: pw('dashboard'), role: 'dashboard' },
    { username: 'bridge', password: pw('bridge'), role: 'bridge' },
  ];
  return {
    devices: Object.fromEntries(machineIds.map((id) => [id, pw(id)])),
    inspection: service('inspection'),
    edge: service('edge'),
    dashboard: service('dashboard'),
    bridge: service('bridge'),
    all,
  };
}
