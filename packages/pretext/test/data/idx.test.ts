import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  encodeIdx,
  FASHION_MNIST_CLASSES,
  fashionMnistDir,
  loadFashionMnist,
  loadIdxDataset,
  readIdx,
  writeIdx,
  type IdxArray,
} from '../../src/data/index.js';
import { tempDir } from './fixtures.js';

const dir = tempDir('idx');

test('IDX files round-trip for every dtype, raw and gzip-compressed', () => {
  const arrays: IdxArray[] = [
    { dtype: 'u8', dims: [3, 2, 2], data: Uint8Array.from({ length: 12 }, (_, i) => i * 20) },
    { dtype: 'i8', dims: [4], data: Int8Array.from([-128, -1, 0, 127]) },
    { dtype: 'i16', dims: [2, 2], data: Int16Array.from([-30000, -1, 1, 30000]) },
    { dtype: 'i32', dims: [3], data: Int32Array.from([-2e9, 0, 2e9]) },
    { dtype: 'f32', dims: [2], data: Float32Array.from([1.5, -0.25]) },
    { dtype: 'f64', dims: [1, 2], data: Float64Array.from([Math.PI, -1e300]) },
  ];
  for (const array of arrays) {
    for (const gzip of [false, true]) {
      const path = join(dir, `${array.dtype}-${gzip}.idx`);
      writeIdx(path, array, { gzip });
      assert.deepEqual(readIdx(path), array, `${array.dtype} gzip=${gzip}`);
    }
  }
  // magic bytes and big-endian dims
  assert.deepEqual([...encodeIdx(arrays[3]).subarray(0, 12)], [0, 0, 0x0c, 1, 0, 0, 0, 3, 0x88, 0xca, 0x6c, 0x00]);
});

test('bad IDX files are refused with clear errors', () => {
  const good = encodeIdx({ dtype: 'u8', dims: [2, 2], data: new Uint8Array(4) });
  writeFileSync(join(dir, 'short.idx'), good.subarray(0, good.length - 1));
  assert.throws(() => readIdx(join(dir, 'short.idx')), /size mismatch: dims 2x2 u8 need 16 bytes, file has 15/);
  writeFileSync(join(dir, 'magic.idx'), Buffer.from([1, 2, 8, 1, 0, 0, 0, 0]));
  assert.throws(() => readIdx(join(dir, 'magic.idx')), /not an IDX file/);
  writeFileSync(join(dir, 'dtype.idx'), Buffer.from([0, 0, 0x42, 1, 0, 0, 0, 0]));
  assert.throws(() => readIdx(join(dir, 'dtype.idx')), /unknown IDX dtype code 0x42/);
});

test('a tiny MNIST-style pair becomes a grayscale store', () => {
  const images = Uint8Array.from({ length: 2 * 3 * 3 }, (_, i) => i);
  writeIdx(join(dir, 'img.gz'), { dtype: 'u8', dims: [2, 3, 3], data: images }, { gzip: true });
  writeIdx(join(dir, 'lbl'), { dtype: 'u8', dims: [2], data: Uint8Array.from([7, 1]) });
  const store = loadIdxDataset(join(dir, 'img.gz'), join(dir, 'lbl'), ['a']);
  assert.deepEqual([store.n, store.height, store.width, store.channels], [2, 3, 3, 1]);
  assert.deepEqual(store.images, images);
  assert.deepEqual([...store.labels], [7, 1]);
  assert.deepEqual(store.paths, ['img.gz#0', 'img.gz#1']);
  writeIdx(join(dir, 'lbl3'), { dtype: 'u8', dims: [3], data: new Uint8Array(3) });
  assert.throws(() => loadIdxDataset(join(dir, 'img.gz'), join(dir, 'lbl3'), []), /expected 2 labels/);
});

test(
  'Fashion-MNIST from the Debian package',
  { skip: !existsSync(fashionMnistDir()) && `${fashionMnistDir()} is absent (apt-get install dataset-fashion-mnist)` },
  () => {
    const train = loadFashionMnist({ split: 'train' });
    assert.deepEqual([train.n, train.height, train.width, train.channels], [60000, 28, 28, 1]);
    assert.equal(train.images.length, 60000 * 28 * 28);
    const counts = new Array(10).fill(0);
    for (const label of train.labels) counts[label]++;
    assert.deepEqual(counts, new Array(10).fill(6000));
    assert.deepEqual(train.classNames, FASHION_MNIST_CLASSES);
    const testSplit = loadFashionMnist({ split: 'test' });
    assert.equal(testSplit.n, 10000);
    assert.ok(Math.max(...testSplit.labels) === 9 && Math.min(...testSplit.labels) === 0);
    assert.throws(
      () => loadFashionMnist({ split: 'test', dir: join(dir, 'nowhere') }),
      /Fashion-MNIST file not found: .*nowhere.*dataset-fashion-mnist/,
    );
  },
);
