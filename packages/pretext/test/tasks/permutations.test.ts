import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { allPermutations, generatePermutations, PERMUTATION_COUNT, permutationSet, TILES } from '../../src/tasks/permutations.js';

/** Pairwise Hamming distances recomputed here, independently of the module. */
function pairwise(perms: number[][]): { min: number; average: number } {
  let min = Infinity;
  let sum = 0;
  let pairs = 0;
  for (let a = 0; a < perms.length; a++) {
    for (let b = a + 1; b < perms.length; b++) {
      const d = perms[a].filter((v, i) => v !== perms[b][i]).length;
      min = Math.min(min, d);
      sum += d;
      pairs++;
    }
  }
  return { min, average: sum / pairs };
}

const isPermutation = (p: number[]) => p.length === TILES && [...p].sort((a, b) => a - b).every((v, i) => v === i);

test('allPermutations lists each of the 9! permutations once, in lexicographic order', () => {
  const all = allPermutations();
  assert.equal(all.length, PERMUTATION_COUNT * TILES);
  assert.deepEqual([...all.subarray(0, 9)], [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual([...all.subarray(9, 18)], [0, 1, 2, 3, 4, 5, 6, 8, 7]);
  assert.deepEqual([...all.subarray(all.length - 9)], [8, 7, 6, 5, 4, 3, 2, 1, 0]);
  const codes = new Set<number>();
  let previous = -1;
  for (let k = 0; k < PERMUTATION_COUNT; k++) {
    let code = 0;
    for (let i = 0; i < TILES; i++) code = code * 9 + all[k * TILES + i];
    assert.ok(code > previous);
    previous = code;
    codes.add(code);
  }
  assert.equal(codes.size, PERMUTATION_COUNT);
});

test('max-min sets of 64 and 100 reach minimum distances 7 and 6; max-avg averages above 8', () => {
  for (const [count, min] of [
    [64, 7],
    [100, 6],
  ]) {
    const perms = generatePermutations(count, 'maxmin', 0);
    assert.equal(perms.length, count);
    assert.ok(perms.every(isPermutation));
    assert.ok(pairwise(perms).min >= min, `maxmin ${count}: min distance ${pairwise(perms).min} < ${min}`);
  }
  const avg = generatePermutations(100, 'maxavg', 0);
  const stats = pairwise(avg);
  assert.ok(stats.average >= 8.0, `maxavg 100: average ${stats.average}`);
  assert.ok(stats.min >= 2);
});

test('generation is deterministic by seed, and the seed picks the first permutation', () => {
  assert.deepEqual(generatePermutations(20, 'maxmin', 3), generatePermutations(20, 'maxmin', 3));
  assert.notDeepEqual(generatePermutations(20, 'maxmin', 3)[0], generatePermutations(20, 'maxmin', 4)[0]);
  assert.throws(() => generatePermutations(1, 'maxmin', 0), RangeError);
  assert.throws(() => generatePermutations(PERMUTATION_COUNT + 1, 'maxavg', 0), RangeError);
});

test('1000 max-min permutations: time, and the distances the set reports', (t) => {
  const start = performance.now();
  const perms = generatePermutations(1000, 'maxmin', 0);
  const seconds = (performance.now() - start) / 1000;
  t.diagnostic(`1000 max-min permutations in ${seconds.toFixed(2)} s`);
  const { min, average } = pairwise(perms);
  t.diagnostic(`min distance ${min}, average ${average.toFixed(3)}`);
  assert.ok(min >= 5);
  assert.ok(seconds < 30);
});

test('permutationSet caches atomically, reuses the cache, and rebuilds a corrupted one', (t) => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'pretext-perms-'));
  t.after(() => rmSync(cacheDir, { recursive: true, force: true }));
  const options = { count: 30, variant: 'maxmin' as const, seed: 1, cacheDir };
  const path = join(cacheDir, 'maxmin-30-1.json');
  const fresh = permutationSet(options);
  assert.deepEqual(readdirSync(cacheDir), ['maxmin-30-1.json']);
  const stats = pairwise(fresh.permutations);
  assert.equal(fresh.minDistance, stats.min);
  assert.ok(Math.abs(fresh.averageDistance - stats.average) < 1e-12);

  // A valid file is trusted: a reordered set comes back as written.
  const reordered = [...fresh.permutations].reverse();
  writeFileSync(path, JSON.stringify({ permutations: reordered }));
  assert.deepEqual(permutationSet(options).permutations, reordered);

  const corrupt = [
    '{"permutations": [[0,1,2',
    JSON.stringify({ permutations: fresh.permutations.slice(1) }),
    JSON.stringify({ permutations: [fresh.permutations[1], ...fresh.permutations.slice(1)] }),
    JSON.stringify({ permutations: [[0, 0, 2, 3, 4, 5, 6, 7, 8], ...fresh.permutations.slice(1)] }),
  ];
  for (const text of corrupt) {
    writeFileSync(path, text);
    assert.deepEqual(permutationSet(options).permutations, fresh.permutations);
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')).permutations, fresh.permutations);
  }
  assert.deepEqual(readdirSync(cacheDir), ['maxmin-30-1.json']);
});
