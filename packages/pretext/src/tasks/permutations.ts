// Permutation sets for the jigsaw task (Noroozi & Favaro 2016, Algorithm 1): greedily pick
// permutations of the 9 tiles that are far apart in Hamming distance, so the classes are distinct.
// 'maxavg' is the paper's rule (maximize the summed distance to the chosen set), 'maxmin'
// maximizes the distance to the nearest chosen permutation. Sets are cached on disk.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { safetensors } from '@pretext/torch';
import { dataCacheDir } from '../data/locations.js';
import { seededRandom } from '../util/random.js';

export const TILES = 9;
/** 9! permutations of the tiles. */
export const PERMUTATION_COUNT = 362880;

export type PermutationVariant = 'maxmin' | 'maxavg';

export interface PermutationSet {
  variant: PermutationVariant;
  seed: number;
  /** Each a permutation of 0..8: position i of the shuffled puzzle shows tile permutations[k][i]. */
  permutations: number[][];
  /** Smallest and mean Hamming distance over all pairs of the set. */
  minDistance: number;
  averageDistance: number;
}

/** All 9! permutations of 0..8 in lexicographic order, 9 bytes each. */
export function allPermutations(): Uint8Array {
  const out = new Uint8Array(PERMUTATION_COUNT * TILES);
  const p = Uint8Array.from({ length: TILES }, (_, i) => i);
  for (let k = 0; k < PERMUTATION_COUNT; k++) {
    out.set(p, k * TILES);
    // Next permutation: find the last ascent, swap with the last larger element, reverse the tail.
    let i = TILES - 2;
    while (i >= 0 && p[i] >= p[i + 1]) i--;
    if (i < 0) break;
    let j = TILES - 1;
    while (p[j] <= p[i]) j--;
    [p[i], p[j]] = [p[j], p[i]];
    p.subarray(i + 1).reverse();
  }
  return out;
}

/** Positions where two permutations differ. */
export function hammingDistance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) d++;
  return d;
}

/** Smallest and mean pairwise Hamming distance of a set. */
export function distanceStats(perms: ArrayLike<number>[]): { minDistance: number; averageDistance: number } {
  let min = Infinity;
  let sum = 0;
  let pairs = 0;
  for (let a = 0; a < perms.length; a++) {
    for (let b = a + 1; b < perms.length; b++) {
      const d = hammingDistance(perms[a], perms[b]);
      if (d < min) min = d;
      sum += d;
      pairs++;
    }
  }
  return { minDistance: min, averageDistance: pairs ? sum / pairs : 0 };
}

/**
 * Greedy selection of `count` permutations (Algorithm 1). The first is drawn by the seed; each
 * next one is a candidate with the best score, ties broken by the seeded PRNG. Every candidate
 * keeps a running score (min or sum of its distances to the chosen set), so each added
 * permutation costs one pass over the 9! candidates.
 */
export function generatePermutations(count: number, variant: PermutationVariant, seed: number): number[][] {
  if (!Number.isInteger(count) || count < 2 || count > PERMUTATION_COUNT) {
    throw new RangeError(`generatePermutations: count must be an integer in 2..${PERMUTATION_COUNT}, got ${count}`);
  }
  const all = allPermutations();
  // Tiles 0..7 packed as nibbles of one int, tile 8 apart: a distance is then an XOR and a nibble count.
  const low = new Int32Array(PERMUTATION_COUNT);
  const high = new Uint8Array(PERMUTATION_COUNT);
  for (let k = 0; k < PERMUTATION_COUNT; k++) {
    let packed = 0;
    for (let i = 0; i < 8; i++) packed |= all[k * TILES + i] << (4 * i);
    low[k] = packed;
    high[k] = all[k * TILES + 8];
  }
  const maxmin = variant === 'maxmin';
  // Running min (starts above any distance) or running sum; -1 marks chosen permutations.
  const score = new Int32Array(PERMUTATION_COUNT).fill(maxmin ? TILES : 0);
  const ties = new Int32Array(PERMUTATION_COUNT);
  const random = seededRandom(seed);
  const chosen: number[] = [];
  let next = Math.floor(random() * PERMUTATION_COUNT);
  for (;;) {
    chosen.push(next);
    score[next] = -1;
    if (chosen.length === count) break;
    const pLow = low[next];
    const pHigh = high[next];
    let best = -1;
    let tieCount = 0;
    for (let k = 0; k < PERMUTATION_COUNT; k++) {
      const s = score[k];
      if (s < 0) continue;
      let x = low[k] ^ pLow;
      x |= x >>> 1;
      x |= x >>> 2;
      x &= 0x11111111;
      const d = (Math.imul(x, 0x11111111) >>> 28) + (high[k] !== pHigh ? 1 : 0);
      const updated = maxmin ? (d < s ? d : s) : s + d;
      score[k] = updated;
      if (updated > best) {
        best = updated;
        tieCount = 0;
      }
      if (updated === best) ties[tieCount++] = k;
    }
    next = ties[Math.floor(random() * tieCount)];
  }
  return chosen.map((k) => Array.from(all.subarray(k * TILES, (k + 1) * TILES)));
}

/** Why `perms` is not a valid set of `count` distinct permutations of 0..8, or undefined. */
export function checkPermutations(perms: unknown, count: number): string | undefined {
  if (!Array.isArray(perms)) return 'not an array';
  if (perms.length !== count) return `${perms.length} permutations, expected ${count}`;
  const seen = new Set<string>();
  for (const p of perms) {
    if (!Array.isArray(p) || p.length !== TILES || [...p].sort((a, b) => a - b).some((v, i) => v !== i))
      return `${JSON.stringify(p)} is not a permutation of 0..8`;
    const key = p.join(',');
    if (seen.has(key)) return `duplicate permutation ${key}`;
    seen.add(key);
  }
  return undefined;
}

export interface PermutationSetOptions {
  count: number;
  variant: PermutationVariant;
  seed: number;
  /** Folder for cached sets (default `<data cache>/permutations`). */
  cacheDir?: string;
}

/** The permutation set for these options: read from the cache when valid, else generated and cached. */
export function permutationSet(options: PermutationSetOptions): PermutationSet {
  const { count, variant, seed } = options;
  const dir = options.cacheDir ?? join(dataCacheDir(), 'permutations');
  const path = join(dir, `${variant}-${count}-${seed}.json`);
  let permutations: number[][] | undefined;
  if (existsSync(path)) {
    try {
      const cached = (JSON.parse(readFileSync(path, 'utf8')) as { permutations?: unknown }).permutations;
      if (checkPermutations(cached, count) === undefined) permutations = cached as number[][];
    } catch {
      // unreadable: rebuilt below
    }
  }
  if (!permutations) {
    permutations = generatePermutations(count, variant, seed);
    safetensors.writeFileAtomic(path, Buffer.from(JSON.stringify({ variant, count, seed, permutations })));
  }
  return { variant, seed, permutations, ...distanceStats(permutations) };
}
