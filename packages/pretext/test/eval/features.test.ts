// Feature extraction (pooling, order, eval mode), the features file, and the bad-input errors.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fromTypedArray, manualSeed, safetensors, tensor } from '@pretext/torch';
import { extractFeatures, extractLayerFeatures, loadFeatures, saveFeatures } from '../../src/eval/features.js';
import { knnProbe } from '../../src/eval/knn.js';
import { linearProbe } from '../../src/eval/linear.js';
import { evaluate, evaluateBackbone, evaluateFeatures } from '../../src/eval/protocols.js';
import { createBackbone } from '../../src/models/index.js';
import { clusters, randomStore, tempDir } from './fixtures.js';

const dir = tempDir('features');
const store = randomStore(12, 16, 3, 3);
manualSeed(0);
const backbone = createBackbone('resnet18-small', 3);
const normalization = { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };

test('extractFeatures pools a block in eval mode, in store or index order, batched', async () => {
  backbone.train();
  const options = { block: 'layer2', normalization, batchSize: 5 };
  const gap = await extractFeatures(backbone, store, { ...options, pool: 'gap' });
  assert.deepEqual(gap.shape, [12, 32]);
  assert.equal(backbone.training, true, 'the training flag is restored');
  assert.deepEqual((await extractFeatures(backbone, store, { ...options, pool: 'grid2' })).shape, [12, 128]);
  assert.deepEqual((await extractFeatures(backbone, store, { ...options, pool: 'flatten' })).shape, [12, 32 * 8 * 8]);
  assert.deepEqual((await extractFeatures(backbone, store, { ...options, pool: 'none' })).shape, [12, 32, 8, 8]);
  const some = await extractFeatures(backbone, store, { ...options, indices: Int32Array.from([7, 2]) });
  assert.ok(some.allclose(gap.indexSelect(0, tensor([7, 2])), 1e-4, 1e-5));
  const layers = await extractLayerFeatures(backbone, store, { blocks: ['stem', 'layer2'], normalization });
  assert.deepEqual([...layers.keys()], ['stem', 'layer2']);
  assert.ok(layers.get('layer2')!.allclose(gap, 1e-4, 1e-5), 'one pass over several blocks gives the same features');
});

test('a grayscale store feeds an RGB backbone; an RGB store cannot feed a grayscale one', async () => {
  const gray = randomStore(4, 16, 1, 2);
  const features = await extractFeatures(backbone, gray, { block: 'stem', normalization });
  assert.deepEqual(features.shape, [4, 16]);
  await assert.rejects(
    extractFeatures(createBackbone('resnet18-small', 1), store, { block: 'stem', normalization: 'dataset' }),
    /backbone takes 1-channel images but the data has 3/,
  );
});

test('a layer name that does not exist is an error naming the valid ones', async () => {
  await assert.rejects(
    extractFeatures(backbone, store, { block: 'block2', normalization }),
    /layer 'block2' does not exist in CifarResNet; its blocks are stem, layer1, layer2, layer3, layer4/,
  );
  await assert.rejects(
    extractFeatures(backbone, store, { block: 'stem', normalization, pool: 'max' as never }),
    /pool must be one of gap, grid2, flatten, none/,
  );
});

test("a backbone's block under a feature protocol with K per class trains on K per class and records K", async () => {
  const input = { backbone, train: store, test: store, block: 'layer1', normalization };
  const result = await evaluateBackbone('knn', input, { labelsPerClass: 2, seed: 1, knn: { k: 3 } });
  assert.equal(result.trainSamples, 6);
  assert.equal(result.details.labelsPerClass, 2);
  assert.equal(result.details.seed, 1);
  assert.equal((await evaluateBackbone('knn', input, { knn: { k: 3 } })).details.labelsPerClass, undefined);
});

test('features files round-trip features, labels, class names, paths and metadata', () => {
  const path = join(dir, 'f.safetensors');
  const features = fromTypedArray(
    Float32Array.from({ length: 12 }, (_, i) => i / 3),
    [4, 3],
  );
  saveFeatures(path, {
    features,
    labels: Int32Array.from([0, 2, 1, 2]),
    classNames: ['a', 'b', 'c'],
    paths: ['p0', 'p1', 'p2', 'p3'],
    meta: { layer: 'block2' },
  });
  const loaded = loadFeatures(path);
  assert.ok(loaded.features.equal(features));
  assert.deepEqual([...loaded.labels], [0, 2, 1, 2]);
  assert.deepEqual(loaded.classNames, ['a', 'b', 'c']);
  assert.deepEqual(loaded.paths, ['p0', 'p1', 'p2', 'p3']);
  assert.deepEqual(loaded.meta, { layer: 'block2' });
  const raw = safetensors.load(path);
  assert.equal(raw.tensors.get('labels')!.dtype, 'int64');
  assert.equal(raw.metadata.format, 'pretext-features-1');
});

test('features and labels of different lengths are rejected, in files and in memory', () => {
  const path = join(dir, 'bad.safetensors');
  safetensors.save(path, { features: fromTypedArray(new Float32Array(15), [5, 3]), labels: tensor([0, 1, 0, 1]) });
  assert.throws(() => loadFeatures(path), /features and labels have different lengths \(5 feature rows, 4 labels\)/);
  const set = clusters({ classes: 2, perClass: 5, dims: 3, separation: 4, seed: 0 }, 1);
  assert.throws(
    () => linearProbe({ ...set, labels: set.labels.subarray(1) }, set),
    /train: features and labels have different lengths \(10 feature rows, 9 labels\)/,
  );
  assert.throws(() => knnProbe(set, { ...set, labels: Int32Array.from(set.labels, () => -1) }), /test: 10 of 10 samples have no label/);
});

test('label sets that differ between train and test are rejected, naming the classes', () => {
  const set = clusters({ classes: 3, perClass: 4, dims: 3, separation: 4, seed: 0 }, 1);
  assert.throws(() => linearProbe(set, { ...set, classNames: ['class0', 'class1', 'other'] }), /label sets of train and test differ/);
  const withoutClass2 = { ...set, labels: Int32Array.from(set.labels, (l) => (l === 2 ? 0 : l)) };
  assert.throws(() => knnProbe(withoutClass2, set), /do not match: test has class\(es\) 'class2' that train lacks/);
  assert.throws(() => knnProbe(set, withoutClass2), /train has class\(es\) 'class2' that test lacks/);
});

test('K larger than a class holds, unknown protocols and mixed inputs are clear errors', async () => {
  const set = clusters({ classes: 2, perClass: 5, dims: 3, separation: 4, seed: 0 }, 1);
  assert.throws(() => evaluateFeatures('linear', set, set, { labelsPerClass: 6 }), /class 'class0' has only 5/);
  assert.throws(
    () => evaluateFeatures('svm' as never, set, set),
    /unknown protocol 'svm'; valid protocols: linear, knn, mlp, conv, finetune/,
  );
  await assert.rejects(evaluate({ protocol: 'knn', train: join(dir, 'f.safetensors'), test: 'cifar10' }), /both be features files/);
  await assert.rejects(evaluate({ protocol: 'knn', train: 'cifar10', test: 'cifar10' }), /give --checkpoint/);
});
