/**
 * Where a new consumer group with `fromBeginning: false` starts: pinned when it subscribes.
 *
 * kafkajs resolves the "latest" offset of a partition with no committed offset lazily, on the member's
 * first fetch after the group join. On a busy machine that fetch can come after a message published right
 * after `subscribe()` resolved, and the message is then skipped: the contract ("a new group starts at the
 * next message") breaks. So the subscription reads the end offsets of the partitions the group has not
 * committed **before** it joins, and seeks the partitions it is assigned to them once it has joined. A
 * partition that got a commit in between (another member of the group) keeps its commit.
 */
import type { Admin } from 'kafkajs';

/** Partition → end offset (the next offset to be written), for the partitions `groupId` has not committed. */
export async function uncommittedEndOffsets(
  admin: Admin,
  groupId: string,
  topic: string,
): Promise<Map<number, string>> {
  const uncommitted = await uncommittedPartitions(admin, groupId, topic);
  const pinned = new Map<number, string>();
  if (uncommitted.size === 0) return pinned;
  for (const p of await admin.fetchTopicOffsets(topic)) {
    if (uncommitted.has(p.partition)) pinned.set(p.partition, p.high);
  }
  return pinned;
}

/** The partitions of `topic` with no committed offset in `groupId`. */
export async function uncommittedPartitions(
  admin: Admin,
  groupId: string,
  topic: string,
): Promise<Set<number>> {
  const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return new Set((offsets?.partitions ?? []).filter((p) => Number(p.offset) < 0).map((p) => p.partition));
}

/**
 * The seeks to apply after the join: each assigned partition that was pinned and still has no commit.
 */
export function startSeeks(
  pinned: ReadonlyMap<number, string>,
  assigned: readonly number[],
  stillUncommitted: ReadonlySet<number>,
): { partition: number; offset: string }[] {
  return assigned
    .filter((p) => pinned.has(p) && stillUncommitted.has(p))
    .map((p) => ({ partition: p, offset: pinned.get(p) as string }));
}
