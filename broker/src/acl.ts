/**
 * Pure access-control decisions for the broker: who may publish to which topic
 * and subscribe to which filter. No I/O; `broker.ts` wires these into aedes'
 * `authorizePublish` / `authorizeSubscribe` hooks.
 *
 * | role         | publish                                      | subscribe                                  |
 * |--------------|----------------------------------------------|--------------------------------------------|
 * | `device`     | `factory/<own id>/telemetry`                 | `factory/<own id>/#` (if the policy allows) |
 * | `inspection` | `factory/+/label`                            | nothing                                    |
 * | `edge`       | `factory/+/prediction`, `driftline/#`        | `factory/+/telemetry`, `factory/+/label`   |
 * | `bridge`     | nothing                                      | `factory/+/telemetry`, `factory/+/label`   |
 * | `dashboard`  | nothing                                      | `factory/#`, `driftline/#`                 |
 * | `retrainer`  | `driftline/#`                                | `driftline/#`                              |
 * | `admin`      | everything except `$SYS/`                    | everything                                 |
 *
 * Nobody publishes to `$SYS/`. A subscription is allowed only when every topic it
 * can match is covered by an allowed filter (`factory/m1/telemetry` is inside
 * `factory/+/telemetry`; `factory/#` is not).
 */

export const ROLES = ['device', 'inspection', 'edge', 'bridge', 'dashboard', 'retrainer', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

/** An authenticated identity: what the ACL decides on. */
export interface Principal {
  readonly username: string;
  readonly role: Role;
  /** Set for (and only for) the `device` role: the one machine it speaks for. */
  readonly machineId?: string;
}

/** Knobs of the ACL that deployments may turn. */
export interface AclPolicy {
  /** Devices may subscribe to their own `factory/<id>/#` (e.g. to read their predictions). Default true. */
  readonly devicesMaySubscribeOwn: boolean;
}

export const DEFAULT_ACL_POLICY: AclPolicy = { devicesMaySubscribeOwn: true };

export type AclDecision = { readonly allowed: true } | { readonly allowed: false; readonly reason: string };

const ALLOW: AclDecision = { allowed: true };
const deny = (reason: string): AclDecision => ({ allowed: false, reason });

/** Role-wide rules; device rules depend on the machine id and are built in {@link rulesFor}. */
const STATIC_RULES: Record<
  Exclude<Role, 'device'>,
  { publish: readonly string[]; subscribe: readonly string[] }
> = {
  inspection: { publish: ['factory/+/label'], subscribe: [] },
  edge: {
    publish: ['factory/+/prediction', 'driftline/#'],
    subscribe: ['factory/+/telemetry', 'factory/+/label'],
  },
  // The MQTT → Kafka bridge (kafka-bridge.ts): reads what the edge reads, publishes nothing.
  bridge: { publish: [], subscribe: ['factory/+/telemetry', 'factory/+/label'] },
  dashboard: { publish: [], subscribe: ['factory/#', 'driftline/#'] },
  retrainer: { publish: ['driftline/#'], subscribe: ['driftline/#'] },
  admin: { publish: ['#', '$#'], subscribe: ['#', '$#'] },
};

/** The filters a principal may publish to and subscribe to. `$#` stands for "any topic starting with `$`". */
export function rulesFor(
  principal: Principal,
  policy: AclPolicy = DEFAULT_ACL_POLICY,
): { publish: readonly string[]; subscribe: readonly string[] } {
  if (principal.role !== 'device') return STATIC_RULES[principal.role];
  const id = principal.machineId;
  if (id === undefined || !isLiteralLevel(id)) return { publish: [], subscribe: [] };
  return {
    publish: [`factory/${id}/telemetry`],
    subscribe: policy.devicesMaySubscribeOwn ? [`factory/${id}/#`] : [],
  };
}

/** True for `$SYS` and anything under `$SYS/`. */
export function isSysTopic(topic: string): boolean {
  return topic === '$SYS' || topic.startsWith('$SYS/');
}

/** May `principal` publish a message on `topic` (a concrete topic name, no wildcards)? */
export function canPublish(
  principal: Principal,
  topic: string,
  policy: AclPolicy = DEFAULT_ACL_POLICY,
): AclDecision {
  if (isSysTopic(topic)) return deny('$SYS topics are reserved for the broker');
  if (topic.length === 0 || topic.includes('+') || topic.includes('#'))
    return deny('topic name must be non-empty and free of wildcards');
  const rules = rulesFor(principal, policy).publish;
  if (rules.some((filter) => filterCovers(filter, topic))) return ALLOW;
  return deny(`role ${principal.role} may not publish to this topic`);
}

/** May `principal` subscribe to `filter` (wildcards allowed)? */
export function canSubscribe(
  principal: Principal,
  filter: string,
  policy: AclPolicy = DEFAULT_ACL_POLICY,
): AclDecision {
  if (!isValidFilter(filter)) return deny('malformed topic filter');
  const rules = rulesFor(principal, policy).subscribe;
  if (rules.some((allowed) => filterCovers(allowed, filter))) return ALLOW;
  return deny(`role ${principal.role} may not subscribe to this filter`);
}

/** A syntactically valid MQTT topic filter: non-empty, `#` only as the whole last level, `+` only as a whole level. */
export function isValidFilter(filter: string): boolean {
  if (filter.length === 0) return false;
  const levels = filter.split('/');
  return levels.every((level, i) => {
    if (level === '#') return i === levels.length - 1;
    if (level === '+') return true;
    return !level.includes('#') && !level.includes('+');
  });
}

function isLiteralLevel(level: string): boolean {
  return level.length > 0 && !level.includes('/') && !level.includes('+') && !level.includes('#');
}

/**
 * True when every topic matched by `requested` (a filter or a plain topic name) is
 * also matched by `allowed`. Follows MQTT matching: `+` is exactly one level, `#`
 * is the rest including the parent level, and wildcards in the first level never
 * match topics starting with `$` ([MQTT-4.7.2-1]). The pseudo-filter `$#` in
 * `allowed` covers every topic starting with `$`.
 */
export function filterCovers(allowed: string, requested: string): boolean {
  const reqDollar = requested.startsWith('$');
  if (allowed === '$#') return reqDollar;
  const a = allowed.split('/');
  const r = requested.split('/');
  if (reqDollar && (a[0] === '+' || a[0] === '#')) return false;
  for (let i = 0; i < a.length; i++) {
    const al = a[i] as string;
    if (al === '#') return true; // covers the rest, including "no more levels"
    const rl = r[i];
    if (rl === undefined) return false;
    if (rl === '#') return false; // only '#' covers '#'
    if (al === '+') continue; // covers any single level, including '+'
    if (rl === '+' || al !== rl) return false;
  }
  return r.length === a.length;
}
