// Low-shot subsets: exactly K labeled samples of every class, drawn with a seed.
import { indicesByClass, seededRandom, shuffled } from '../util/random.js';

/**
 * Sorted indices of exactly `k` samples per class, drawn with `seed`. The same (labels, k, seed)
 * always gives the same subset. Throws naming the class when one has fewer than `k` samples.
 */
export function sampleLabelsPerClass(labels: Int32Array, k: number, options: { seed?: number; classNames: string[] }): Int32Array {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`labels per class must be a positive integer, got ${k}`);
  const { classNames } = options;
  const byClass = indicesByClass(labels, classNames.length);
  const short = byClass.map((rows, c) => ({ c, count: rows.length })).filter((x) => x.count < k);
  if (short.length) {
    const which = short.map(({ c, count }) => `class '${classNames[c]}' has only ${count}`).join(', ');
    throw new RangeError(`labels per class ${k} is more than the training set holds: ${which}`);
  }
  const random = seededRandom(options.seed ?? 0);
  const picked = byClass.flatMap((rows) => shuffled(rows, random).slice(0, k));
  return Int32Array.from(picked).sort();
}
