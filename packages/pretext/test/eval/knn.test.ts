// The batched kNN agrees with a brute-force computation in plain JS.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromTypedArray } from '@pretext/torch';
import { knnProbe, knnVotes } from '../../src/eval/knn.js';
import { seededRandom } from '../../src/util/random.js';
import { gaussian } from './fixtures.js';

function bruteForceVotes(
  bank: number[][],
  labels: number[],
  queries: number[][],
  classes: number,
  k: number,
  temperature: number,
): number[][] {
  const unit = (v: number[]) => {
    const n = Math.hypot(...v);
    return v.map((x) => x / n);
  };
  const keys = bank.map(unit);
  return queries.map((q) => {
    const u = unit(q);
    const sims = keys.map((key, i) => ({ i, s: key.reduce((acc, x, d) => acc + x * u[d], 0) }));
    sims.sort((a, b) => b.s - a.s);
    const votes = new Array<number>(classes).fill(0);
    for (const { i, s } of sims.slice(0, k)) votes[labels[i]] += Math.exp(s / temperature);
    return votes;
  });
}

test('kNN votes and predictions match a brute-force computation', () => {
  const noise = gaussian(seededRandom(7));
  const [n, m, d, classes] = [60, 17, 5, 3];
  const bank = Array.from({ length: n }, () => Array.from({ length: d }, noise));
  const queries = Array.from({ length: m }, () => Array.from({ length: d }, noise));
  const labels = Array.from({ length: n }, (_, i) => (i * 7) % classes);
  const toTensor = (rows: number[][]) => fromTypedArray(Float32Array.from(rows.flat()), [rows.length, d]);
  for (const [k, temperature] of [
    [7, 0.07],
    [200, 0.5],
  ]) {
    const expected = bruteForceVotes(bank, labels, queries, classes, Math.min(k, n), temperature);
    const votes = knnVotes(toTensor(bank), Int32Array.from(labels), toTensor(queries), classes, {
      k,
      temperature,
      batchSize: 4,
    }).tolist() as number[][];
    votes.forEach((row, q) =>
      row.forEach((v, c) =>
        assert.ok(Math.abs(v - expected[q][c]) <= 1e-4 * Math.max(1, expected[q][c]), `query ${q} class ${c}: ${v} vs ${expected[q][c]}`),
      ),
    );
    const argmax = (row: number[]) => row.indexOf(Math.max(...row));
    const result = knnProbe(
      { features: toTensor(bank), labels: Int32Array.from(labels), classNames: ['a', 'b', 'c'] },
      { features: toTensor(queries), labels: Int32Array.from(expected, argmax), classNames: ['a', 'b', 'c'] },
      { k, temperature },
    );
    assert.equal(result.top1, 100, `k=${k}: predictions differ from brute force`);
  }
});
