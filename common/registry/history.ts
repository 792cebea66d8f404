import type { AliasChange, VersionStatus } from './types.ts';

/**
 * Pure rules over the alias history, shared by both registry implementations:
 * which champion a rollback returns to, and a version's derived status.
 */

/**
 * Replays the history as a stack of champions, oldest first: a promotion pushes
 * its target; a rollback to X pops down to X (or restarts the stack at X when X
 * is not in it).
 */
export function championStack(history: readonly AliasChange[]): string[] {
  const stack: string[] = [];
  for (const change of history) {
    if (change.action === 'rollback') {
      while (stack.length > 0 && stack[stack.length - 1] !== change.to) stack.pop();
      if (stack.length === 0) stack.push(change.to);
    } else {
      stack.push(change.to);
    }
  }
  return stack;
}

/**
 * The version a rollback from `current` returns to: the nearest champion below
 * `current` on the stack that is neither `current` itself nor rejected; undefined
 * when there is none.
 */
export function rollbackTarget(
  history: readonly AliasChange[],
  current: string,
  isRejected: (version: string) => boolean,
): string | undefined {
  const stack = championStack(history);
  const top = stack.lastIndexOf(current);
  const below = top === -1 ? stack : stack.slice(0, top);
  for (let i = below.length - 1; i >= 0; i--) {
    const v = below[i] as string;
    if (v !== current && !isRejected(v)) return v;
  }
  return undefined;
}

/** Status of `version`: champion (alias points here) > rejected > retired (was champion once) > candidate. */
export function deriveStatus(
  version: string,
  facts: { champion: string | undefined; rejected: boolean; everChampion: boolean },
): VersionStatus {
  if (facts.champion === version) return 'champion';
  if (facts.rejected) return 'rejected';
  if (facts.everChampion) return 'retired';
  return 'candidate';
}

/** Numeric order of registry version strings ("2" before "10"). */
export function compareVersions(a: string, b: string): number {
  return Number(a) - Number(b);
}
