import { describeError } from '../errors.ts';
import type { Logger } from '../logging/logger.ts';
import type { ModelVersion, Unwatch, WatchOptions } from './types.ts';

/**
 * The polling loop behind `watchChampion` of both registries: reads the
 * champion's version number every `intervalMs`, and on a change loads the full
 * {@link ModelVersion} and calls `onChange`. Polls never overlap; a failing poll
 * is reported and the next one tries again. The timer is unref'd, so a watcher
 * alone does not keep a process alive.
 */

/** What {@link pollChampion} needs from a registry. */
export interface ChampionSource {
  /** The champion's version number, or undefined when there is none. */
  readChampion(): Promise<string | undefined>;
  /** The full record of a version. */
  loadVersion(version: string): Promise<ModelVersion | undefined>;
}

/** Starts a watcher; returns the function that stops it. */
export function pollChampion(
  source: ChampionSource,
  onChange: (champion: ModelVersion | undefined) => void,
  options: WatchOptions & { intervalMs: number; logger: Logger; name: string },
): Unwatch {
  let last: string | undefined;
  let started = false;
  let busy = false;
  let stopped = false;
  const poll = async (): Promise<void> => {
    if (busy || stopped) return;
    busy = true;
    try {
      const champion = await source.readChampion();
      if (!started) {
        started = true;
        last = champion;
        if (!options.emitInitial) return;
      } else if (champion === last) {
        return;
      }
      const version = champion === undefined ? undefined : await source.loadVersion(champion);
      last = champion;
      if (!stopped) onChange(version);
    } catch (err) {
      if (options.onError) options.onError(err);
      else
        options.logger.warn('champion watcher: poll failed', { name: options.name, err: describeError(err) });
    } finally {
      busy = false;
    }
  };
  void poll();
  const timer = setInterval(() => void poll(), options.intervalMs);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
