// The one seeded PRNG of the package (mulberry32): held-out splits, low-shot subsets, minibatch
// order, permutation sets and the synthetic scenes all draw from it, so that each is a pure
// function of its seed. Tensor randomness comes from torch Generators instead.
import * as torch from '@pretext/torch';

/** Mixes a 32-bit seed so that neighbouring seeds start from unrelated states. */
function mixSeed(seed: number): number {
  let h = (seed >>> 0) ^ 0x9e3779b9;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export class Rng {
  private state: number;

  /** `seed` is reduced to 32 bits and mixed (see `Rng.unmixed` for the raw mulberry32 state). */
  constructor(seed: number) {
    this.state = mixSeed(seed);
  }

  /** A generator whose 32-bit state is `seed` itself, as mulberry32's reference code seeds it. */
  static unmixed(seed: number): Rng {
    const rng = new Rng(0);
    rng.state = seed >>> 0;
    return rng;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  /** Standard normal sample (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
}

/** A uniform [0, 1) function over the unmixed mulberry32 stream of a 32-bit seed. */
export function seededRandom(seed: number): () => number {
  const rng = Rng.unmixed(seed);
  return () => rng.next();
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

/** A seeded subset of sample indices, sorted (`--limit`, `--train-limit`); drawn with a torch Generator. */
export function subsetIndices(n: number, limit: number, seed: number): Int32Array {
  if (limit >= n) return Int32Array.from({ length: n }, (_, i) => i);
  const perm = torch.noGrad(() => torch.tidy(() => torch.randperm(n, new torch.Generator(seed)).narrow(0, 0, limit).sort(0)[0].toArray()));
  return Int32Array.from(perm);
}
