import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadStore, loadStoreIf, readStoreHeader, sampleImage, writeStore, type SampleStore } from '../../src/data/index.js';
import { tempDir } from './fixtures.js';

const dir = tempDir('store');

function exampleStore(n: number, channels: 1 | 3): SampleStore {
  const [height, width] = [3, 2];
  return {
    images: Uint8Array.from({ length: n * height * width * channels }, (_, i) => (i * 37) % 256),
    n,
    height,
    width,
    channels,
    labels: Int32Array.from({ length: n }, (_, i) => (i % 3) - 1),
    classNames: ['a', 'b'],
    paths: Array.from({ length: n }, (_, i) => `img/${i}.png`),
  };
}

test('a store round-trips pixels, labels, names, paths, clips and motion', () => {
  const store: SampleStore = {
    ...exampleStore(5, 3),
    clips: [{ path: 'v.mp4', label: 1, fps: 5, sourceFps: 30, frameCount: 5, firstFrame: 0, sourceWidth: 64, sourceHeight: 48 }],
    frameMotion: Float32Array.from([0, 1.5, 2.25, 0, 7]),
  };
  const path = join(dir, 'full.pxs');
  writeStore(path, store, { fingerprint: 'abc', report: { note: 'kept' } });
  const loaded = loadStore(path);
  assert.deepEqual(loaded.images, store.images);
  assert.deepEqual(loaded.labels, store.labels);
  assert.deepEqual(loaded.frameMotion, store.frameMotion);
  assert.deepEqual(loaded.clips, store.clips);
  assert.deepEqual([loaded.n, loaded.height, loaded.width, loaded.channels], [5, 3, 2, 3]);
  assert.deepEqual(loaded.classNames, ['a', 'b']);
  assert.deepEqual(loaded.paths, store.paths);
  assert.equal(loaded.fingerprint, 'abc');
  assert.deepEqual(readStoreHeader(path).report, { note: 'kept' });
  assert.deepEqual(sampleImage(loaded, 1), store.images.subarray(18, 36));
  assert.equal(
    loadStoreIf(path, (header) => header.fingerprint === 'other'),
    undefined,
  );
  const matched = loadStoreIf(path, (header) => header.fingerprint === 'abc');
  assert.deepEqual(matched?.header.report, { note: 'kept' });
  assert.deepEqual(matched?.store, loaded);
});

test('grayscale and empty stores round-trip', () => {
  const gray = exampleStore(2, 1);
  writeStore(join(dir, 'gray.pxs'), gray);
  const loaded = loadStore(join(dir, 'gray.pxs'));
  assert.equal(loaded.channels, 1);
  assert.deepEqual(loaded.images, gray.images);
  assert.equal(loaded.frameMotion, undefined);

  writeStore(join(dir, 'empty.pxs'), exampleStore(0, 3));
  assert.equal(loadStore(join(dir, 'empty.pxs')).n, 0);
});

test('writes are atomic (no temporary files left) and replace the old store', () => {
  const path = join(dir, 'replace.pxs');
  writeStore(path, exampleStore(4, 3));
  writeStore(path, exampleStore(2, 3));
  assert.equal(loadStore(path).n, 2);
  assert.deepEqual(
    readdirSync(dir).filter((name) => name.endsWith('.tmp')),
    [],
  );
});

test('inconsistent stores are refused and damaged files give clear errors', () => {
  assert.throws(() => writeStore(join(dir, 'bad.pxs'), { ...exampleStore(3, 3), labels: new Int32Array(2) }), /labels has 2 entries/);
  const path = join(dir, 'cut.pxs');
  writeStore(path, exampleStore(4, 3));
  const bytes = readFileSync(path);
  writeFileSync(path, bytes.subarray(0, bytes.length - 5));
  assert.throws(() => loadStore(path), /truncated sample store/);
  writeFileSync(path, 'hello world, not a store');
  assert.throws(() => loadStore(path), /not a pretext sample store/);
});
