import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  asNumpyArray,
  CIFAR10_CLASSES,
  defaultCifar10Tarball,
  detectCifarFormat,
  ensureCifar10Jpeg,
  loadCifar10,
  readCifarBinary,
  unpickle,
  type SampleStore,
} from '../../src/data/index.js';
import { jpegBytes, noiseImage, pixelAt, quietOptions, tempDir, writeFile } from './fixtures.js';

const dir = tempDir('cifar');
const PLANE = 1024;

/** CHW bytes of a recognisable 32x32 image: R = p + i, G = 2p, B = 255 - p (mod 256) at pixel p. */
function chwImage(i: number): Uint8Array {
  const chw = new Uint8Array(3 * PLANE);
  for (let p = 0; p < PLANE; p++) {
    chw[p] = (p + i) % 256;
    chw[PLANE + p] = (2 * p) % 256;
    chw[2 * PLANE + p] = 255 - (p % 256);
  }
  return chw;
}

function binaryBatch(labels: number[]): Buffer {
  return Buffer.concat(labels.flatMap((label, i) => [Buffer.from([label]), chwImage(i)]));
}

const bytes = (...parts: (string | number[] | Uint8Array)[]): Buffer =>
  Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'latin1') : Buffer.from(part))));

/** A batch pickled the way Python 2's cPickle (protocol 2) wrote the official CIFAR-10 files. */
function python2Batch(labels: number[]): Buffer {
  const data = Buffer.concat(labels.map((_, i) => chwImage(i)));
  const int32 = (value: number): Buffer => {
    const buffer = Buffer.alloc(4);
    buffer.writeInt32LE(value);
    return buffer;
  };
  // prettier-ignore
  return bytes(
    [0x80, 2], '}q\x01(',
    'U\x04dataq\x02', 'cnumpy.core.multiarray\n_reconstruct\nq\x03', 'cnumpy\nndarray\nq\x04', 'K\x00\x85q\x05', 'U\x01bq\x06', '\x87q\x07Rq\x08',
    '(K\x01', 'K', [labels.length], 'M\x00\x0c\x86q\x09',
    'cnumpy\ndtype\nq\x0a', 'U\x02u1K\x00K\x01\x87Rq\x0b', '(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb',
    '\x89T', int32(data.length), data, 'tb',
    'U\x06labels]q\x0c(', ...labels.map((label) => bytes('K', [label])), 'e',
    'u.',
  );
}

/** Checks shape, labels and pixels; image k was made by chwImage(seeds[k]). */
function assertCifarPixels(store: SampleStore, labels: number[], seeds = labels.map((_, i) => i)): void {
  assert.deepEqual([store.n, store.height, store.width, store.channels], [labels.length, 32, 32, 3]);
  assert.deepEqual([...store.labels], labels);
  for (let k = 0; k < store.n; k++) {
    const image = store.images.subarray(k * 3 * PLANE, (k + 1) * 3 * PLANE);
    for (const [x, y] of [
      [0, 0],
      [5, 3],
      [31, 31],
    ]) {
      const p = y * 32 + x;
      assert.deepEqual(pixelAt(image, 32, x, y), [(p + seeds[k]) % 256, (2 * p) % 256, 255 - (p % 256)], `image ${k} pixel (${x}, ${y})`);
    }
  }
}

const trainLabels = [3, 7, 0, 9, 1, 5, 2, 8, 4, 6];
const batchLabels = (b: number): number[] => trainLabels.slice(2 * b, 2 * b + 2);

test('the binary format: label byte + CHW planes, converted to HWC', () => {
  const root = join(dir, 'bin', 'cifar-10-batches-bin');
  for (let b = 0; b < 5; b++) writeFile(join(root, `data_batch_${b + 1}.bin`), binaryBatch(batchLabels(b)));
  writeFile(join(root, 'test_batch.bin'), binaryBatch([1, 2, 3]));
  const store = readCifarBinary([join(root, 'data_batch_1.bin')]);
  assertCifarPixels(store, batchLabels(0));
  assert.deepEqual(store.paths, ['data_batch_1.bin#0', 'data_batch_1.bin#1']);
  assert.deepEqual(detectCifarFormat(join(dir, 'bin')), { format: 'binary', root });
  writeFile(join(dir, 'odd.bin'), Buffer.alloc(3074));
  assert.throws(() => readCifarBinary([join(dir, 'odd.bin')]), /not a multiple of the 3073-byte CIFAR record/);
});

test('loadCifar10 reads the binary and python formats, from `dir` or $CIFAR10_DIR', async () => {
  const train = await loadCifar10({ split: 'train', dir: join(dir, 'bin') });
  assertCifarPixels(
    train,
    trainLabels,
    trainLabels.map((_, i) => i % 2),
  ); // two images per batch
  assert.deepEqual(train.classNames, CIFAR10_CLASSES);

  const root = join(dir, 'py');
  for (let b = 0; b < 5; b++) writeFile(join(root, `data_batch_${b + 1}`), python2Batch(batchLabels(b)));
  writeFile(join(root, 'test_batch'), python2Batch([4, 4, 2]));
  const previous = process.env.CIFAR10_DIR;
  process.env.CIFAR10_DIR = root;
  try {
    const testSplit = await loadCifar10({ split: 'test' });
    assertCifarPixels(testSplit, [4, 4, 2]);
    assert.deepEqual(testSplit.paths, ['test_batch#0', 'test_batch#1', 'test_batch#2']);
  } finally {
    if (previous === undefined) delete process.env.CIFAR10_DIR;
    else process.env.CIFAR10_DIR = previous;
  }
  const pythonTrain = await loadCifar10({ split: 'train', dir: root });
  assert.deepEqual(pythonTrain.images, train.images);
  rmSync(join(root, 'data_batch_3'));
  await assert.rejects(loadCifar10({ split: 'train', dir: root }), /CIFAR-10 python files missing: .*data_batch_3/);
  await assert.rejects(loadCifar10({ split: 'train', dir: join(dir, 'nothing-here') }), /no CIFAR-10 data found in/);
});

const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

test('pickles written by Python 3 (protocols 2, 4, 5) decode too', { skip: !hasNumpy && 'python3 with numpy is not installed' }, () => {
  const script = `import pickle, numpy as np, sys
data = (np.arange(2 * 3072) % 251).astype(np.uint8).reshape(2, 3072)
for proto in (2, 4, 5):
    pickle.dump({b'data': data, b'labels': [6, 1], 'name': 'x'}, open(f'${dir}/py3_p{proto}', 'wb'), protocol=proto)`;
  const result = spawnSync('python3', ['-c', script], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  for (const proto of [2, 4, 5]) {
    const dict = unpickle(readFileSync(join(dir, `py3_p${proto}`))) as Map<string, unknown>;
    assert.deepEqual(dict.get('labels'), [6, 1]);
    assert.equal(dict.get('name'), 'x');
    const array = asNumpyArray(dict.get('data'));
    assert.deepEqual([array.dtype, array.shape], ['u1', [2, 3072]]);
    assert.ok(
      array.data.every((value, i) => value === i % 251),
      `protocol ${proto} data`,
    );
  }
});

test('ensureCifar10Jpeg unpacks the JPEG tarball once; loadCifar10 ingests and caches it', async () => {
  const staging = join(dir, 'staging');
  for (const split of ['train', 'test']) {
    for (const [c, name] of ['cat', 'airplane'].entries()) {
      writeFile(join(staging, 'cifar10', split, name, '0000.jpg'), await jpegBytes(noiseImage(32, 32, c + 1), 32, 32));
    }
  }
  const tarball = join(dir, 'cifar10-jpg.tar.gz');
  assert.equal(spawnSync('tar', ['czf', tarball, '-C', staging, 'cifar10']).status, 0);
  const cache = join(dir, 'cache');
  const root = ensureCifar10Jpeg(cache, tarball);
  assert.equal(root, join(cache, 'cifar10'));
  assert.deepEqual(readdirSync(join(root, 'train')), ['airplane', 'cat']);
  assert.deepEqual(readdirSync(cache), ['cifar10'], 'the temporary unpack folder is gone');
  rmSync(tarball);
  assert.equal(ensureCifar10Jpeg(cache, tarball), root, 'unpacked once: the tarball is no longer needed');
  assert.throws(() => ensureCifar10Jpeg(join(dir, 'other-cache'), tarball), /CIFAR-10 JPEG tarball not found at .*cifar10-jpg\.tar\.gz/);

  const store = await loadCifar10({ split: 'test', dir: root, cacheDir: cache, ...quietOptions() });
  assert.deepEqual(store.classNames, ['airplane', 'cat']);
  assert.deepEqual(store.paths, ['airplane/0000.jpg', 'cat/0000.jpg']);
  assert.ok(
    readdirSync(cache).some((name) => /^cifar10-test-[0-9a-f]{8}\.pxs$/.test(name)),
    'the ingested store is cached',
  );
});

test(
  'the shared CIFAR-10 tarball is found next to the repository',
  { skip: !existsSync(defaultCifar10Tarball()) && `absent: ${defaultCifar10Tarball()}` },
  () => {
    assert.match(defaultCifar10Tarball(), /shared\/datasets\/cifar10\/cifar10-jpg\.tar\.gz$/);
  },
);
