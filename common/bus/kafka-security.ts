import kafkajs, { type Admin, type AclEntry } from 'kafkajs';
import type { Logger } from '../logging/logger.ts';
import { ensureTopics } from './kafka.ts';
import { BUS_TOPICS } from './types.ts';

/**
 * Who may do what on Kafka: one SASL/SCRAM user per service and the ACLs
 * that let each one produce and consume exactly the topics its code uses.
 * `scripts/services/kafka.sh` applies them locally (through
 * `scripts/services/kafka-provision.ts`), `docs/kafka-security.md` documents
 * them for the cluster, `tests/external/kafka-security.test.ts` checks them
 * against a real broker. Without a matching ACL Kafka refuses
 * (`allow.everyone.if.no.acl.found=false`); `admin` and the broker's own users
 * are super users.
 */

// kafkajs is CommonJS and Node cannot see these enums as named exports.
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;

/** The services that talk to Kafka, each with its own SCRAM user of the same name. */
export const KAFKA_SERVICE_USERS = ['edge', 'retrainer', 'bridge', 'dashboard'] as const;
export type KafkaServiceUser = (typeof KAFKA_SERVICE_USERS)[number];

/** Telemetry and labels bridged from MQTT (`broker/src/kafka-bridge.ts` BRIDGE_TOPIC, the edge's EDGE_KAFKA_TOPIC). */
export const TELEMETRY_TOPIC = 'driftline.telemetry';

export type KafkaOperation = 'READ' | 'WRITE' | 'DESCRIBE' | 'DELETE';

export interface KafkaAclRule {
  user: KafkaServiceUser;
  resource: 'topic' | 'group';
  /** Literal name, or the prefix for `prefixed`. */
  name: string;
  pattern: 'literal' | 'prefixed';
  operations: readonly KafkaOperation[];
  /** Which code needs it. */
  why: string;
}

/** Client ids whose consumer groups the ACLs name (the sample store's throw-away groups start with them). */
export interface KafkaAclOptions {
  /** `KAFKA_TOPIC_PREFIX` of the deployment (prepended to topics and bus groups). Default ''. */
  prefix?: string;
  /** `KAFKA_CLIENT_ID` of the retrainer. Default `driftline-retrainer`. */
  retrainerClientId?: string;
  /** `EDGE_KAFKA_GROUP` of the edge workers. Default `driftline-edge`. */
  edgeIngestGroup?: string;
}

/** The ACL matrix for one deployment (topic prefix, client ids). */
export function kafkaAclRules(options: KafkaAclOptions = {}): KafkaAclRule[] {
  const p = options.prefix ?? '';
  const t = {
    telemetry: `${p}${TELEMETRY_TOPIC}`,
    retrain: `${p}${BUS_TOPICS.retrainRequests}`,
    events: `${p}${BUS_TOPICS.modelEvents}`,
    samples: `${p}${BUS_TOPICS.labelledSamples}`,
    dead: `${p}${BUS_TOPICS.deadLetter}`,
  };
  const topic = (
    user: KafkaServiceUser,
    name: string,
    operations: KafkaOperation[],
    why: string,
  ): KafkaAclRule => ({ user, resource: 'topic', name, pattern: 'literal', operations, why });
  const rules: KafkaAclRule[] = [];
  // Every bus user checks the four bus topics at connect (listTopics + metadata) and may dead-letter.
  for (const user of ['edge', 'retrainer', 'dashboard'] as const) {
    for (const name of [t.retrain, t.events, t.samples, t.dead])
      rules.push(topic(user, name, ['DESCRIBE'], 'KafkaBus.connect checks every bus topic exists'));
    rules.push(topic(user, t.dead, ['WRITE'], 'KafkaBus dead-letters what its handlers refuse'));
  }
  rules.push(
    topic('bridge', t.telemetry, ['WRITE'], 'kafka-bridge forwards MQTT telemetry and labels'),
    topic('edge', t.telemetry, ['READ'], 'EDGE_INGEST=kafka reads the bridged telemetry'),
    topic('edge', t.retrain, ['WRITE'], 'the edge requests a retrain on drift'),
    topic('edge', t.samples, ['WRITE'], 'the edge publishes labelled samples'),
    topic('edge', t.events, ['READ'], 'the edge follows promotions and rollbacks'),
    topic('retrainer', t.retrain, ['READ'], 'the retrainer consumes retrain requests'),
    topic('retrainer', t.samples, ['READ'], 'the Kafka sample store reads the training and holdout data'),
    topic('retrainer', t.events, ['WRITE'], 'the retrainer announces promotions and rejections'),
    topic('dashboard', t.retrain, ['READ'], 'the dashboard shows retrain requests'),
    topic(
      'dashboard',
      t.events,
      ['READ', 'WRITE'],
      'the dashboard shows model events and publishes rollbacks',
    ),
    {
      user: 'edge',
      resource: 'group',
      name: `${p}${options.edgeIngestGroup ?? 'driftline-edge'}`,
      pattern: 'literal',
      operations: ['READ'],
      why: 'the edge workers share the telemetry partitions as one group',
    },
    {
      user: 'edge',
      resource: 'group',
      name: `${p}edge-`,
      pattern: 'prefixed',
      operations: ['READ'],
      why: 'each edge worker follows model events in its own bus group `edge-<client id>`',
    },
    {
      user: 'retrainer',
      resource: 'group',
      name: `${p}retrainer`,
      pattern: 'literal',
      operations: ['READ'],
      why: 'the retrainer bus group',
    },
    {
      user: 'retrainer',
      resource: 'group',
      name: `${options.retrainerClientId ?? 'driftline-retrainer'}-sample-reader-`,
      pattern: 'prefixed',
      operations: ['READ', 'DELETE'],
      why: 'the sample store reads in throw-away groups `<client id>-sample-reader-<uuid>` and deletes them',
    },
    {
      user: 'dashboard',
      resource: 'group',
      name: `${p}dashboard`,
      pattern: 'literal',
      operations: ['READ'],
      why: 'the dashboard bus group',
    },
  );
  return rules;
}

/** The rules as kafkajs ACL entries (`User:<name>`, any host, ALLOW). */
export function kafkaAclEntries(rules: readonly KafkaAclRule[]): AclEntry[] {
  return rules.flatMap((r) =>
    r.operations.map((op) => ({
      resourceType: r.resource === 'topic' ? AclResourceTypes.TOPIC : AclResourceTypes.GROUP,
      resourceName: r.name,
      resourcePatternType:
        r.pattern === 'literal' ? ResourcePatternTypes.LITERAL : ResourcePatternTypes.PREFIXED,
      principal: `User:${r.user}`,
      host: '*',
      operation: AclOperationTypes[op],
      permissionType: AclPermissionTypes.ALLOW,
    })),
  );
}

/** Creates the ACLs (idempotent: Kafka keeps one copy of an identical binding). Needs a super user. */
export async function applyKafkaAcls(admin: Admin, rules: readonly KafkaAclRule[]): Promise<number> {
  const acl = kafkaAclEntries(rules);
  await admin.createAcls({ acl });
  return acl.length;
}

/** Removes the ACLs of `rules` (tests clean up their per-run prefix this way). */
export async function deleteKafkaAcls(admin: Admin, rules: readonly KafkaAclRule[]): Promise<void> {
  await admin.deleteAcls({ filters: kafkaAclEntries(rules) });
}

/**
 * Creates the Driftline topics of a deployment, so that no service user needs
 * the CREATE permission: the four bus topics (3 partitions) and the telemetry
 * topic (12, the bridge's default). Existing topics are left as they are.
 */
export async function provisionKafkaTopics(
  admin: Admin,
  options: {
    prefix?: string;
    partitions?: number;
    telemetryPartitions?: number;
    retentionMs?: number;
    logger: Logger;
  },
): Promise<string[]> {
  const p = options.prefix ?? '';
  const retentionMs = options.retentionMs ?? 7 * 24 * 3600 * 1000;
  const specs = [
    ...Object.values(BUS_TOPICS).map((t) => ({
      topic: `${p}${t}`,
      partitions: options.partitions ?? 3,
      retentionMs,
    })),
    { topic: `${p}${TELEMETRY_TOPIC}`, partitions: options.telemetryPartitions ?? 12, retentionMs },
  ];
  await ensureTopics(admin, specs, options.logger);
  return specs.map((s) => s.topic);
}

/**
 * The password of a Kafka user on the LOCAL broker of `scripts/services/kafka.sh`:
 * `KAFKA_<USER>_PASSWORD`, else `<KAFKA_DEV_PASSWORD or "driftline-dev">-<user>`.
 * Development and tests only; a cluster takes every password from its secrets.
 */
export function localKafkaPassword(user: string, env: NodeJS.ProcessEnv = process.env): string {
  const own = env[`KAFKA_${user.toUpperCase()}_PASSWORD`];
  if (own !== undefined && own !== '') return own;
  return `${env.KAFKA_DEV_PASSWORD || 'driftline-dev'}-${user}`;
}

/** The ACL matrix as a Markdown table (docs/kafka-security.md embeds it; a test keeps the two in sync). */
export function kafkaAclMarkdown(rules: readonly KafkaAclRule[] = kafkaAclRules()): string {
  const lines = [
    '| user | resource | name | pattern | operations | needed by |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rules.map(
      (r) =>
        `| \`${r.user}\` | ${r.resource} | \`${r.name}\` | ${r.pattern} | ${r.operations.join(', ')} | ${r.why} |`,
    ),
  ];
  return lines.join('\n');
}
