/**
 * The event bus between services (retrain requests, model events, labelled
 * samples). The in-process bus is the embedded default; the Kafka bus
 * implements the same interface when `KAFKA_BROKERS` is set.
 */

/** One event as delivered to a handler. */
export interface BusMessage {
  topic: string;
  /** Partition key (machineId, model name…); ordering holds per key. */
  key: string;
  /** The JSON-decoded value; handlers validate it with their schema. */
  value: unknown;
  /** Position in the topic, as text (Kafka offset or in-process index). */
  offset: string;
  /** Epoch ms when it was published. */
  timestamp: number;
}

/**
 * Returns when the work for the message is done; only then is it acknowledged
 * (offset committed). Throwing a retriable error redelivers the message; a
 * non-retriable error sends it to the dead-letter topic and moves on.
 */
export type BusHandler = (message: BusMessage) => Promise<void>;

export interface SubscribeOptions {
  /** Consumer group: each message goes to one member of each group. */
  group: string;
  /** Start from the earliest retained message when the group has no position yet. Default true. */
  fromBeginning?: boolean;
}

export interface Subscription {
  /** Stops delivery; in-flight handlers finish first. */
  close(): Promise<void>;
}

export interface EventBus {
  /** A short description for logs, e.g. `in-process` or `kafka 127.0.0.1:9092`. */
  readonly kind: string;
  publish(topic: string, key: string, value: unknown): Promise<void>;
  subscribe(topic: string, options: SubscribeOptions, handler: BusHandler): Promise<Subscription>;
  /** Drains in-flight handlers, commits, disconnects. */
  close(): Promise<void>;
}

/** Topic names, identical on every bus implementation. */
export const BUS_TOPICS = {
  retrainRequests: 'driftline.retrain-requests',
  modelEvents: 'driftline.model-events',
  labelledSamples: 'driftline.labelled-samples',
  deadLetter: 'driftline.dead-letter',
} as const;
