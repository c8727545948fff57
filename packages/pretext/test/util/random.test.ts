// The package's one PRNG: its streams are mulberry32 exactly (checked against a BigInt rewrite of the
// reference algorithm), so the sampling decisions pinned elsewhere and the synthetic renders keep
// their values; seededRandom takes the seed as the raw state, Rng mixes it first.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { indicesByClass, Rng, seededRandom, shuffled } from '../../src/util/random.js';

const M32 = (1n << 32n) - 1n;
const u32 = (x: bigint): bigint => x & M32;
const mul = (a: bigint, b: bigint): bigint => u32(a * b);

/** mulberry32 (Tommy Ettinger's reference), in unsigned BigInt arithmetic. */
function referenceMulberry32(state: bigint): () => number {
  return () => {
    state = u32(state + 0x6d2b79f5n);
    let t = mul(state ^ (state >> 15n), state | 1n);
    t = u32(t ^ u32(t + mul(t ^ (t >> 7n), t | 61n)));
    return Number(u32(t ^ (t >> 14n))) / 2 ** 32;
  };
}

/** The seed mixer Rng applies (murmur3's finalizer on seed ^ golden ratio). */
function referenceMix(seed: number): bigint {
  let h = u32(BigInt(seed >>> 0) ^ 0x9e3779b9n);
  h = mul(h ^ (h >> 16n), 0x85ebca6bn);
  h = mul(h ^ (h >> 13n), 0xc2b2ae35n);
  return u32(h ^ (h >> 16n));
}

const seeds = [0, 1, 42, 2 ** 31 + 5, 2 ** 32 - 1, 123456789];

test('seededRandom is mulberry32 from the raw seed, Rng from the mixed seed', () => {
  for (const seed of seeds) {
    const ours = seededRandom(seed);
    const reference = referenceMulberry32(BigInt(seed >>> 0));
    for (let i = 0; i < 1000; i++) assert.equal(ours(), reference(), `seededRandom(${seed}) draw ${i}`);
    const rng = new Rng(seed);
    const mixed = referenceMulberry32(referenceMix(seed));
    for (let i = 0; i < 1000; i++) assert.equal(rng.next(), mixed(), `Rng(${seed}) draw ${i}`);
  }
});

test("Rng's helpers map the uniform stream as documented", () => {
  const rng = new Rng(7);
  const twin = new Rng(7);
  for (let i = 0; i < 200; i++) {
    const int = rng.int(3, 9);
    assert.equal(int, 3 + Math.floor(twin.next() * 7));
    assert.equal(rng.range(-1, 2), -1 + 3 * twin.next());
    assert.equal(rng.chance(0.3), twin.next() < 0.3);
    assert.equal(rng.pick(['a', 'b', 'c']), ['a', 'b', 'c'][Math.floor(twin.next() * 3)]);
  }
});

test('shuffled returns a seeded permutation without touching its input; indicesByClass groups rows', () => {
  const items = Array.from({ length: 50 }, (_, i) => i);
  const a = shuffled(items, seededRandom(3));
  assert.deepEqual(shuffled(items, seededRandom(3)), a);
  assert.notDeepEqual(a, items);
  assert.deepEqual(
    [...a].sort((x, y) => x - y),
    items,
  );
  assert.deepEqual(
    items,
    Array.from({ length: 50 }, (_, i) => i),
  );
  assert.deepEqual(indicesByClass(Int32Array.from([2, 0, 1, 2, -1, 0]), 3), [[1, 5], [2], [0, 3]]);
});
