// Low-shot subsets: exactly K per class, deterministic for a seed, and a clear error when a class is short.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleLabelsPerClass } from '../../src/eval/lowshot.js';

const classNames = ['cat', 'dog', 'ship'];
// 50 cats, 30 dogs, 12 ships, interleaved.
const labels = Int32Array.from([...Array(50).fill(0), ...Array(30).fill(1), ...Array(12).fill(2)].map((l, i, a) => a[(i * 37) % a.length]));

test('sampling takes exactly K of every class, sorted and without repeats', () => {
  for (const k of [1, 5, 12]) {
    const picked = sampleLabelsPerClass(labels, k, { seed: 0, classNames });
    assert.equal(picked.length, 3 * k);
    assert.equal(new Set(picked).size, picked.length);
    assert.deepEqual(
      [...picked],
      [...picked].sort((a, b) => a - b),
    );
    for (let c = 0; c < 3; c++) assert.equal(picked.filter((i) => labels[i] === c).length, k);
  }
});

test('sampling is deterministic for a seed and differs across seeds', () => {
  const a = sampleLabelsPerClass(labels, 10, { seed: 42, classNames });
  assert.deepEqual(sampleLabelsPerClass(labels, 10, { seed: 42, classNames }), a);
  assert.notDeepEqual(sampleLabelsPerClass(labels, 10, { seed: 43, classNames }), a);
});

test('K larger than a class holds is an error naming the class', () => {
  assert.throws(() => sampleLabelsPerClass(labels, 20, { seed: 0, classNames }), /labels per class 20 .*class 'ship' has only 12/);
  assert.throws(() => sampleLabelsPerClass(labels, 40, { seed: 0, classNames }), /class 'dog' has only 30, class 'ship' has only 12/);
  assert.throws(() => sampleLabelsPerClass(labels, 0, { seed: 0, classNames }), /positive integer/);
});
