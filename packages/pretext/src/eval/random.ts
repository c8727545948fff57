// Seeded randomness for sampling decisions (held-out splits, low-shot subsets, minibatch order), so
// that every evaluation is a pure function of its seed.

/** A uniform [0, 1) generator (mulberry32) from a 32-bit seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** A shuffled copy (Fisher-Yates). */
export function shuffled<T extends Int32Array | number[]>(items: T, random: () => number): T {
  const out = items.slice() as T;
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Sample indices grouped by label: byClass[k] lists the rows of class k in order. */
export function indicesByClass(labels: Int32Array, numClasses: number): number[][] {
  const byClass = Array.from({ length: numClasses }, () => [] as number[]);
  labels.forEach((label, i) => byClass[label]?.push(i));
  return byClass;
}
