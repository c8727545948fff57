// Folder layouts (flat / class subfolders) and reuse of the cached store.
import assert from 'node:assert/strict';
import { readdirSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ingestImages, listSource, loadStore } from '../../src/data/index.js';
import { noiseImage, quietOptions, tempDir, writeFile, writePng } from './fixtures.js';

const root = tempDir('ingest-cache');

test('class subfolders are labels (sorted, searched recursively); a flat folder is unlabeled', async () => {
  const source = join(root, 'classes');
  await writePng(join(source, 'zebra', 'b.png'), noiseImage(4, 4, 1), 4, 4);
  await writePng(join(source, 'zebra', 'a.png'), noiseImage(4, 4, 2), 4, 4);
  await writePng(join(source, 'ant', 'nested', 'c.png'), noiseImage(4, 4, 3), 4, 4);
  await writePng(join(source, 'ant', 'd.png'), noiseImage(4, 4, 4), 4, 4);
  await writePng(join(source, 'stray.png'), noiseImage(4, 4, 5), 4, 4);
  writeFile(join(source, 'zebra', '.hidden.png'), 'skipped as hidden');
  const { store, report } = await ingestImages({ source, size: 4, out: join(root, 'classes.pxs'), ...quietOptions() });
  assert.deepEqual(store.classNames, ['ant', 'zebra']);
  assert.deepEqual(store.paths, ['ant/d.png', 'ant/nested/c.png', 'zebra/a.png', 'zebra/b.png']);
  assert.deepEqual([...store.labels], [0, 0, 1, 1]);
  assert.deepEqual(Buffer.from(store.images.subarray(0, 48)), noiseImage(4, 4, 4));
  assert.equal(report.layout, 'classes');
  assert.deepEqual(report.perClass, { ant: 2, zebra: 2 });
  assert.deepEqual(report.skipped, [
    { path: 'stray.png', reason: 'outside the class folders' },
    { path: 'zebra/.hidden.png', reason: 'hidden file (name starts with a dot)' },
  ]);

  const flat = join(root, 'flat');
  await writePng(join(flat, 'x.png'), noiseImage(4, 4), 4, 4);
  await writePng(join(flat, 'y.png'), noiseImage(4, 4), 4, 4);
  const flatStore = (await ingestImages({ source: flat, size: 4, out: join(root, 'flat.pxs'), ...quietOptions() })).store;
  assert.deepEqual([...flatStore.labels], [-1, -1]);
  assert.deepEqual(flatStore.classNames, []);
  assert.equal(listSource(flat).layout, 'flat');
});

test('the cached store is reused until the source or the settings change', async () => {
  const source = join(root, 'cached');
  const out = join(root, 'out', 'cached.pxs');
  for (const name of ['a', 'b', 'c']) await writePng(join(source, `${name}.png`), noiseImage(8, 8, name.charCodeAt(0)), 8, 8);
  const ingest = (extra = {}) => ingestImages({ source, size: 8, out, ...quietOptions(), ...extra });

  const first = await ingest();
  assert.equal(first.reused, false);
  const second = await ingest();
  assert.equal(second.reused, true);
  assert.deepEqual(second.store.images, first.store.images);
  assert.deepEqual(second.report, first.report, 'the report comes back with the cached store');
  assert.equal(loadStore(out).fingerprint, first.store.fingerprint);

  // touch: same content, new mtime
  const later = new Date(Date.now() + 60_000);
  utimesSync(join(source, 'b.png'), later, later);
  assert.equal((await ingest()).reused, false);
  assert.equal((await ingest()).reused, true);

  // modified content
  await writePng(join(source, 'a.png'), noiseImage(8, 8, 99), 8, 8);
  const modified = await ingest();
  assert.equal(modified.reused, false);
  assert.deepEqual(Buffer.from(modified.store.images.subarray(0, 192)), noiseImage(8, 8, 99));

  // a new file, different settings, an explicit rebuild
  await writePng(join(source, 'd.png'), noiseImage(8, 8, 4), 8, 8);
  const added = await ingest();
  assert.equal(added.reused, false);
  assert.equal(added.store.n, 4);
  assert.equal((await ingest({ background: { r: 0, g: 0, b: 0 } })).reused, false);
  assert.equal((await ingest({ background: { r: 0, g: 0, b: 0 } })).reused, true);
  assert.equal((await ingest({ background: { r: 0, g: 0, b: 0 }, rebuild: true })).reused, false);
  assert.deepEqual(readdirSync(join(root, 'out')), ['cached.pxs'], 'no temporary files are left behind');

  // a store written inside its own source folder is not part of the source
  const inside = join(source, 'store.pxs');
  assert.equal((await ingestImages({ source, size: 8, out: inside, ...quietOptions() })).store.n, 4);
  assert.equal((await ingestImages({ source, size: 8, out: inside, ...quietOptions() })).reused, true);
});
