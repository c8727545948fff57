// Evaluation refuses to report a number that would be wrong without a word: features files made
// differently, test samples that are training samples, a folder read for both splits; a train/ +
// val/ folder is split by them, and the random-init baseline runs on a user's folder without a bench
// config.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { saveFeatures, type FeatureFile } from '../../src/eval/features.js';
import { evaluate } from '../../src/eval/protocols.js';
import { clusters, tempDir, writeBrightnessFolder } from './fixtures.js';

const dir = tempDir('honest');
const meta = { checkpoint: 'runs/a/checkpoints/best.json', backbone: 'nin4', layer: 'block2', pool: 'gap', imageSize: 32 };

function featuresFile(name: string, sampleSeed: number, fields: Record<string, unknown>, paths?: string[]): string {
  const set = clusters({ classes: 2, perClass: 10, dims: 4, separation: 6, seed: 0 }, sampleSeed);
  const file: FeatureFile = {
    ...set,
    paths: paths ?? Array.from(set.labels, (_, i) => `img${sampleSeed}-${i}.png`),
    meta: { ...meta, ...fields },
  };
  const path = join(dir, name);
  saveFeatures(path, file);
  file.features.dispose();
  return path;
}

test('features files: the same file, different checkpoints or blocks, and shared samples are refused', async () => {
  const train = featuresFile('train.safetensors', 1, { data: 'cifar10', split: 'train', source: 'cifar10:train' });
  const test = featuresFile('test.safetensors', 2, { data: 'cifar10', split: 'test', source: 'cifar10:test' });
  const knn = { protocol: 'knn' as const, knn: { k: 5 } };
  assert.equal((await evaluate({ ...knn, train, test })).testSamples, 20);

  await assert.rejects(evaluate({ ...knn, train, test: train }), /--train and --test are the same file/);

  const otherLayer = featuresFile('layer4.safetensors', 2, { layer: 'block4', data: 'cifar10', split: 'test', source: 'cifar10:test' });
  await assert.rejects(
    evaluate({ ...knn, train, test: otherLayer }),
    /made differently \(train vs test: layer "block2" vs "block4"\); embed both the same way, or pass --allow-mismatch/,
  );
  const warnings: string[] = [];
  const forced = await evaluate({ ...knn, train, test: otherLayer, allowMismatch: true, log: (line) => warnings.push(line) });
  assert.equal(forced.testSamples, 20);
  assert.match(warnings.join('\n'), /^warning: the features files were made differently/);

  // Train rows embedded twice under another name: same source, same sample paths.
  const trainAgain = featuresFile('train-copy.safetensors', 1, { data: 'cifar10', split: 'train', source: 'cifar10:train' });
  await assert.rejects(
    evaluate({ ...knn, train, test: trainAgain }),
    /20 of the 20 test samples are also training samples \(img1-0\.png, img1-1\.png, img1-2\.png, \.\.\., both from cifar10:train\)/,
  );
  // The same relative paths under different sources (CIFAR's train/ and test/ folders) are different images.
  const samePaths = featuresFile('test-same-names.safetensors', 2, { data: 'cifar10', split: 'test', source: 'cifar10:test' }, [
    ...Array.from({ length: 20 }, (_, i) => `img1-${i}.png`),
  ]);
  assert.equal((await evaluate({ ...knn, train, test: samePaths })).testSamples, 20);
});

test('data specs: a train/ + val/ folder is split by them, the random-init baseline needs no bench config, one folder for both is refused', async () => {
  const data = join(dir, 'my-photos');
  // Two classes that differ in brightness, 8 train and 4 val images each.
  await writeBrightnessFolder(data, 8);
  const lines: string[] = [];
  const previous = process.env.PRETEXT_DATA;
  process.env.PRETEXT_DATA = join(dir, 'cache');
  try {
    const options = {
      protocol: 'knn' as const,
      knn: { k: 3 },
      backbone: 'resnet18-small',
      init: 'random' as const,
      layer: 'stem',
      log: (line: string) => lines.push(line),
    };
    const result = await evaluate({ ...options, train: data, test: data });
    assert.deepEqual([result.trainSamples, result.testSamples], [16, 8]);
    assert.ok(result.top1 >= 75, `brightness separates the classes even at random init: ${result.top1}%`);
    assert.ok(lines.includes(`data: the training split is ${join(data, 'train')}`));
    assert.ok(lines.includes(`data: the evaluation split is ${join(data, 'val')}`));
    assert.ok(lines.includes('evaluating resnet18-small at random init (seed 0)'));

    const flat = join(data, 'train');
    await assert.rejects(
      evaluate({ ...options, train: flat, test: flat }),
      new RegExp(`--train and --test both read ${flat}, and 16 test samples are also training samples`),
    );
    await assert.rejects(
      evaluate({ protocol: 'knn', train: data, test: data }),
      /give --checkpoint \(a run folder\) to embed them with, or --backbone NAME --init random/,
    );
  } finally {
    if (previous === undefined) delete process.env.PRETEXT_DATA;
    else process.env.PRETEXT_DATA = previous;
  }
});
