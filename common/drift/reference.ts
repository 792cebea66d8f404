import { ArtifactError } from '../errors.ts';
import type { ReferenceSample } from '../model/types.ts';
import { FEATURES, type Feature } from '../schema/features.ts';
import { SortedSample } from '../stats/ks.ts';

/**
 * Validates a champion's reference sample and sorts each feature once.
 * Throws ArtifactError when a feature is missing, empty or not finite.
 */
export function sortReference(reference: ReferenceSample): SortedSample[] {
  if (
    typeof reference !== 'object' ||
    reference === null ||
    typeof reference.features !== 'object' ||
    reference.features === null
  ) {
    throw new ArtifactError('reference sample has no features');
  }
  return FEATURES.map((f) => {
    const values = (reference.features as Partial<Record<Feature, unknown>>)[f];
    if (!Array.isArray(values) && !ArrayBuffer.isView(values))
      throw new ArtifactError(`reference sample has no values for ${f}`);
    const arr = values as ArrayLike<unknown>;
    if (arr.length < 1) throw new ArtifactError(`reference sample for ${f} is empty`);
    for (let i = 0; i < arr.length; i++) {
      const v = arr[i];
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw new ArtifactError(`reference sample for ${f} has a non-finite value at ${i}`);
    }
    return new SortedSample(arr as ArrayLike<number>);
  });
}
