// Each probe recovers known structure: separable Gaussian clusters reach 100%, random labels land near chance.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { convProbe } from '../../src/eval/conv.js';
import { knnProbe } from '../../src/eval/knn.js';
import { heldOutSplit, linearProbe } from '../../src/eval/linear.js';
import { mlpProbe } from '../../src/eval/mlp.js';
import { evaluateFeatures } from '../../src/eval/protocols.js';
import { clusters, type ClusterOptions } from './fixtures.js';

const separable: ClusterOptions = { classes: 4, perClass: 60, dims: 16, separation: 8, seed: 1 };
const train = clusters(separable, 2);
const test_ = clusters({ ...separable, perClass: 40 }, 3);
const noise: ClusterOptions = { ...separable, separation: 0, randomLabels: true };
const randomTrain = clusters(noise, 4);
const randomTest = clusters({ ...noise, perClass: 100 }, 5);
const chance = 100 / separable.classes;

test('the linear probe separates Gaussian clusters perfectly and reports every class', () => {
  const r = linearProbe(train, test_);
  assert.equal(r.top1, 100);
  assert.equal(r.protocol, 'linear');
  assert.deepEqual(
    r.perClass.map((c) => [c.className, c.accuracy, c.count]),
    [0, 1, 2, 3].map((c) => [`class${c}`, 100, 40]),
  );
  assert.deepEqual(
    r.confusion.map((row) => row.reduce((a, b) => a + b, 0)),
    [40, 40, 40, 40],
  );
  assert.equal(r.trainSamples, 240);
  assert.ok(r.compute.cpuSeconds >= 0 && r.compute.epochs > 0);
  const candidates = r.details.candidates as { weightDecay: number; heldOutAccuracy: number }[];
  assert.equal(candidates.length, 6);
  assert.ok(candidates.some((c) => c.weightDecay === r.details.weightDecay));
});

test('the weight decay is chosen on a stratified held-out part of train', () => {
  const { fit, heldOut } = heldOutSplit(train.labels, 4, 0.1, 0);
  assert.equal(heldOut.length, 24);
  assert.equal(fit.length + heldOut.length, 240);
  assert.equal(new Set([...fit, ...heldOut]).size, 240);
  for (let c = 0; c < 4; c++) assert.equal(heldOut.filter((i) => train.labels[i] === c).length, 6);
  assert.deepEqual(heldOutSplit(train.labels, 4, 0.1, 0).heldOut, heldOut);
  const fixed = linearProbe(train, test_, { weightDecay: 1e-3 });
  assert.equal(fixed.details.weightDecay, 1e-3);
  assert.deepEqual(fixed.details.candidates, []);
});

test('kNN and the MLP probe separate the clusters perfectly', () => {
  assert.equal(knnProbe(train, test_).top1, 100);
  assert.equal(knnProbe(train, test_, { k: 5 }).details.k, 5);
  assert.equal(mlpProbe(train, test_, { epochs: 20, hidden: [32] }).top1, 100);
});

test('the conv probe separates clusters of feature maps', () => {
  const maps: ClusterOptions = { ...separable, sampleShape: [4, 2, 2] };
  const r = convProbe(clusters(maps, 2), clusters({ ...maps, perClass: 40 }, 3), { epochs: 15, width: 16 });
  assert.ok(r.top1 >= 95, `conv probe ${r.top1}%`);
  assert.throws(() => convProbe(train, test_), /feature maps N x C x H x W/);
});

test('random labels land near chance under every feature protocol', () => {
  for (const protocol of ['linear', 'knn', 'mlp'] as const) {
    const r = evaluateFeatures(protocol, randomTrain, randomTest, { mlp: { epochs: 10, hidden: [32] } });
    assert.ok(Math.abs(r.top1 - chance) < 12, `${protocol} on random labels: ${r.top1}% (chance ${chance}%)`);
  }
});

test('low-shot evaluation trains on exactly K per class and records K', () => {
  const r = evaluateFeatures('linear', train, test_, { labelsPerClass: 5, seed: 3 });
  assert.equal(r.trainSamples, 20);
  assert.equal(r.details.labelsPerClass, 5);
  assert.equal(r.top1, 100);
});
