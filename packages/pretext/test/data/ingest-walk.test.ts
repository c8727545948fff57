// The folder walk and the ingest's output: symbolic link loops, hidden entries, empty classes, the
// size chosen from the images, split folders (train/ with test/ or val/), and --out paths that
// cannot or must not be written.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ingestImages, listSource, resolveDataset } from '../../src/data/index.js';
import { noiseImage, quietOptions, tempDir, writePng } from './fixtures.js';

const root = tempDir('ingest-walk');

const writeImages = async (folder: string, names: string[], side: number) => {
  for (const [i, name] of names.entries()) await writePng(join(folder, name), noiseImage(side, side, i + 1), side, side);
};

test('a symbolic link loop is searched once and reported; a link into another class does not move its images', async () => {
  const source = join(root, 'loop');
  await writeImages(join(source, 'dog', 'images'), ['a.png', 'b.png'], 4);
  await writeImages(join(source, 'cat'), ['c.png'], 4);
  symlinkSync('..', join(source, 'dog', 'images', 'backlink'));
  symlinkSync('../cat', join(source, 'dog', 'cats-too'));
  symlinkSync('a.png', join(source, 'dog', 'images', 'again.png'));
  const listing = listSource(source);
  assert.deepEqual(
    listing.files.map((file) => file.relPath),
    ['cat/c.png', 'dog/images/a.png', 'dog/images/b.png'],
  );
  const reasons = Object.fromEntries(listing.skipped.map((issue) => [issue.path, issue.reason]));
  assert.equal(reasons['dog/images/backlink'], 'symbolic link loop: leads back to dog');
  assert.equal(reasons['dog/cats-too'], 'same folder as cat, searched once');
  assert.equal(reasons['dog/images/again.png'], 'same file as dog/images/a.png, listed once');
  const { store, report } = await ingestImages({ source, size: 4, out: join(root, 'loop.pxs'), ...quietOptions() });
  assert.equal(store.n, 3);
  assert.deepEqual(report.perClass, { cat: 1, dog: 2 });
});

test('hidden files and folders are listed as skipped; an empty class folder is warned about', async () => {
  const source = join(root, 'hidden');
  await writeImages(join(source, 'bird'), ['a.png', '.b.png'], 4);
  await writeImages(join(source, '.secret-class'), ['c.png'], 4);
  await writeImages(join(source, 'bird', '.thumbnails'), ['d.png'], 4);
  mkdirSync(join(source, 'empty'));
  const quiet = quietOptions();
  const { report } = await ingestImages({ source, size: 4, out: join(root, 'hidden.pxs'), ...quiet });
  assert.deepEqual(report.classNames, ['bird', 'empty']);
  assert.deepEqual(
    report.skipped.map((issue) => `${issue.path}: ${issue.reason}`),
    [
      '.secret-class: hidden folder (name starts with a dot), not searched',
      'bird/.b.png: hidden file (name starts with a dot)',
      'bird/.thumbnails: hidden folder (name starts with a dot), not searched',
    ],
  );
  assert.deepEqual(report.warnings, [
    { path: 'empty', reason: "empty class folder: no image was ingested, so class 'empty' has 0 samples" },
  ]);
  assert.ok(quiet.lines.some((line) => line.startsWith('warning: empty: empty class folder')));
});

test('without a size, images that share one keep it; differing or large images get the stated default', async () => {
  const shared = join(root, 'shared-size');
  await writeImages(shared, ['a.png', 'b.png', 'c.png'], 12);
  const quiet = quietOptions();
  const first = await ingestImages({ source: shared, out: join(root, 'shared.pxs'), ...quiet });
  assert.equal(first.store.height, 12);
  assert.deepEqual(Buffer.from(first.store.images.subarray(0, 12 * 12 * 3)), noiseImage(12, 12, 1), 'native pixels kept exactly');
  assert.ok(quiet.lines.some((line) => line.includes('all 3 are 12x12: ingesting at their own size, 12x12')));
  const again = quietOptions();
  const reused = await ingestImages({ source: shared, out: join(root, 'shared.pxs'), ...again });
  assert.equal(reused.reused, true);
  assert.match(again.lines.join('\n'), /reusing .* \(3 samples of 12x12, source unchanged\)/);

  const mixed = join(root, 'mixed-size');
  await writeImages(mixed, ['a.png'], 12);
  await writeImages(mixed, ['b.png'], 20);
  const mixedLog = quietOptions();
  assert.equal((await ingestImages({ source: mixed, out: join(root, 'mixed.pxs'), ...mixedLog })).store.height, 64);
  assert.ok(mixedLog.lines.some((line) => /2 different sizes .*ingesting at the default 64x64/.test(line)));

  const large = join(root, 'large-size');
  await writeImages(large, ['a.png'], 200);
  const largeLog = quietOptions();
  assert.equal((await ingestImages({ source: large, out: join(root, 'large.pxs'), ...largeLog })).store.height, 64);
  assert.ok(largeLog.lines.some((line) => /all 1 are 200x200, larger than 128 px/.test(line)));
});

test('a folder with train/ and val/ is split by them and says which folders it read', async () => {
  const data = join(root, 'tiny-imagenet-like');
  await writeImages(join(data, 'train', 'x'), ['a.png', 'b.png'], 6);
  await writeImages(join(data, 'val', 'x'), ['c.png'], 6);
  const lines: string[] = [];
  const previous = process.env.PRETEXT_DATA;
  process.env.PRETEXT_DATA = join(root, 'cache');
  try {
    const train = await resolveDataset(data, { split: 'train', log: (line) => lines.push(line) });
    const test = await resolveDataset(data, { split: 'test', log: (line) => lines.push(line) });
    assert.deepEqual([train.n, test.n, train.height], [2, 1, 6]);
    assert.equal(test.origin, join(data, 'val'));
    assert.ok(lines.includes(`data: the training split is ${join(data, 'train')}`));
    assert.ok(lines.includes(`data: the evaluation split is ${join(data, 'val')}`));
  } finally {
    if (previous === undefined) delete process.env.PRETEXT_DATA;
    else process.env.PRETEXT_DATA = previous;
  }
});

test('--out paths that cannot or must not be written fail at once, replace nothing and leave no temporary file', async () => {
  const source = join(root, 'out-source');
  await writeImages(source, ['a.png'], 4);
  const ingest = (out: string) => ingestImages({ source, size: 4, out, ...quietOptions() });
  await assert.rejects(ingest('/proc/nope/x.pxs'), /cannot create folder \/proc\/nope \(ENOENT\)/);
  await assert.rejects(ingest('/dev/full'), /refusing to write \/dev\/full: it is a character device/);
  assert.ok(statSync('/dev/full').isCharacterDevice());
  const folder = join(root, 'a-folder');
  mkdirSync(folder);
  await assert.rejects(ingest(folder), /it is a folder, not a regular file/);
  const notes = join(root, 'notes.txt');
  writeFileSync(notes, 'my notes');
  await assert.rejects(ingest(notes), /refusing to replace .*notes\.txt: it exists and is not a pretext sample store/);
  assert.equal(readFileSync(notes, 'utf8'), 'my notes');
  assert.deepEqual(
    readdirSync(root).filter((name) => name.endsWith('.tmp')),
    [],
  );
});
