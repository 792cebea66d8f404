import type { KafkaConnectionOptions } from '../bus/kafka.ts';
import type { Logger } from '../logging/logger.ts';
import { openFileSampleStore, type FileSampleStoreOptions } from './file-store.ts';
import { openKafkaSampleStore, type KafkaSampleStoreOptions } from './kafka-store.ts';
import type { LabelledSampleStore } from './types.ts';

/** Options of {@link createSampleStore}. */
export interface CreateSampleStoreOptions extends Omit<KafkaConnectionOptions, 'brokers' | 'logger'> {
  /** Kafka brokers; empty or unset: the file store in `dir`. */
  kafkaBrokers?: readonly string[];
  /** Directory of the file store. */
  dir: string;
  /** Samples the file store keeps. */
  maxSamples?: number;
  /** Logger of the store. */
  logger?: Logger;
  /** Further file-store options. */
  file?: Omit<FileSampleStoreOptions, 'dir' | 'maxSamples' | 'logger'>;
  /** Further Kafka-store options (topic prefix, partitions, retention, seek slack…). */
  kafka?: Omit<KafkaSampleStoreOptions, 'brokers' | 'logger'>;
}

/**
 * The labelled-sample store a service uses: the Kafka store (the
 * `driftline.labelled-samples` topic itself, connected) when brokers are
 * given, else the embedded file store in `dir`.
 */
export async function createSampleStore(options: CreateSampleStoreOptions): Promise<LabelledSampleStore> {
  const { kafkaBrokers, dir, maxSamples, logger, file, kafka, ...connection } = options;
  if (kafkaBrokers && kafkaBrokers.length > 0) {
    return openKafkaSampleStore({
      ...connection,
      ...(kafka ?? {}),
      brokers: kafkaBrokers,
      ...(logger ? { logger } : {}),
    });
  }
  return openFileSampleStore({
    ...(file ?? {}),
    dir,
    ...(maxSamples !== undefined ? { maxSamples } : {}),
    ...(logger ? { logger } : {}),
  });
}
