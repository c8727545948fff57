// Bad files are skipped (or, for a lying extension, decoded by content) with a warning and counted;
// they never abort the ingest.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ingestImages, sniffImageFormat, type FileIssue } from '../../src/data/index.js';
import { fromRaw, jpegBytes, noiseImage, quietOptions, tempDir, writeFile, writePng } from './fixtures.js';

const root = tempDir('ingest-bad');

test('every kind of bad file is skipped with its reason, the good ones are ingested', async () => {
  const source = join(root, 'mixed');
  const pixels = noiseImage(8, 8);
  const jpeg = await jpegBytes(noiseImage(16, 16, 7), 16, 16);
  await writePng(join(source, 'good.png'), pixels, 8, 8);
  writeFile(join(source, 'good.jpg'), await jpegBytes(pixels, 8, 8));
  writeFile(join(source, 'empty.jpg'), '');
  writeFile(join(source, 'truncated.jpg'), jpeg.subarray(0, jpeg.length >> 1));
  const corrupt = Buffer.from(jpeg);
  corrupt.fill(0xab, 4, 150); // JPEG magic intact, headers destroyed
  writeFile(join(source, 'corrupt.jpg'), corrupt);
  writeFile(join(source, 'notes.jpg'), 'this is a text file, not an image\n');
  writeFile(join(source, 'huge.png'), await fromRaw(noiseImage(64, 64), { width: 64, height: 64, channels: 3 }).png().toBuffer());
  writeFile(join(source, 'lying.jpg'), await fromRaw(pixels, { width: 8, height: 8, channels: 3 }).png().toBuffer());

  const quiet = quietOptions();
  const { store, report } = await ingestImages({ source, size: 8, out: join(root, 'mixed.pxs'), pixelLimit: 1000, ...quiet });
  assert.deepEqual(store.paths, ['good.jpg', 'good.png', 'lying.jpg']);
  assert.deepEqual(Buffer.from(store.images.subarray(8 * 8 * 3 * 2)), pixels, 'the PNG behind the .jpg name is decoded as PNG');
  assert.equal(report.found, 8);
  assert.equal(report.ingested, 3);
  const reasons = Object.fromEntries(report.skipped.map((issue: FileIssue) => [issue.path, issue.reason]));
  assert.deepEqual(Object.keys(reasons), ['corrupt.jpg', 'empty.jpg', 'huge.png', 'notes.jpg', 'truncated.jpg']);
  assert.match(reasons['empty.jpg'], /empty file \(0 bytes\)/);
  assert.match(reasons['truncated.jpg'], /^truncated jpeg/);
  assert.match(reasons['corrupt.jpg'], /^corrupt jpeg/);
  assert.match(reasons['notes.jpg'], /^not an image/);
  assert.match(reasons['huge.png'], /64x64 = 4096 pixels exceeds the pixel limit of 1000/);
  assert.deepEqual(report.warnings, [{ path: 'lying.jpg', reason: 'extension .jpg says jpeg but the content is png; decoded as png' }]);
  for (const name of [...Object.keys(reasons), 'lying.jpg']) {
    assert.ok(
      quiet.lines.some((line) => line.startsWith('warning:') && line.includes(name)),
      `a warning names ${name}`,
    );
  }
  const summary = quiet.lines.at(-1) ?? '';
  assert.match(summary, /ingested 3 of 8 image files/);
  assert.match(summary, /skipped 5 files:\n {4}corrupt\.jpg: corrupt jpeg/);
});

test('an unreadable file is skipped as permission denied', async (t) => {
  const source = join(root, 'perm');
  await writePng(join(source, 'good.png'), noiseImage(4, 4), 4, 4);
  const locked = await writePng(join(source, 'locked.png'), noiseImage(4, 4, 2), 4, 4);
  chmodSync(locked, 0o000);
  const out = join(root, 'perm-out');
  let skipped: FileIssue[];
  if (process.getuid?.() !== 0) {
    skipped = (await ingestImages({ source, size: 4, out: join(out, 's.pxs'), ...quietOptions() })).report.skipped;
  } else {
    // root reads any file, so the ingest runs as the unprivileged user 'nobody' in a child process
    chmodSync(root, 0o755);
    mkdirSync(out, { mode: 0o777 });
    chmodSync(out, 0o777);
    const moduleUrl = new URL('../../src/data/index.js', import.meta.url).href;
    const script = `import { ingestImages } from ${JSON.stringify(moduleUrl)};
      const { report } = await ingestImages({ source: ${JSON.stringify(source)}, size: 4, out: ${JSON.stringify(join(out, 's.pxs'))}, log() {}, onProgress() {} });
      process.stdout.write(JSON.stringify(report.skipped));`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { uid: 65534, gid: 65534, encoding: 'utf8' });
    if (child.error || child.status !== 0) {
      t.skip(`running as root and cannot switch to user nobody: ${child.error?.message ?? child.stderr}`);
      return;
    }
    skipped = JSON.parse(child.stdout) as FileIssue[];
  }
  assert.deepEqual(skipped, [{ path: 'locked.png', reason: 'permission denied' }]);
});

test('an empty folder, or one without any decodable image, is a clear error', async () => {
  const empty = join(root, 'empty');
  mkdirSync(empty);
  await assert.rejects(
    ingestImages({ source: empty, size: 8, out: join(root, 'e.pxs'), ...quietOptions() }),
    /no image files found in .*empty/,
  );
  await assert.rejects(
    ingestImages({ source: join(root, 'missing'), size: 8, out: join(root, 'e.pxs'), ...quietOptions() }),
    /does not exist/,
  );

  const junk = join(root, 'junk');
  writeFile(join(junk, 'a.jpg'), 'text');
  writeFile(join(junk, 'b.png'), '');
  await assert.rejects(
    ingestImages({ source: junk, size: 8, out: join(root, 'j.pxs'), ...quietOptions() }),
    /no decodable image in .*junk: all 2 files were skipped \(a\.jpg: not an image.*; b\.png: empty file/,
  );
});

test('formats are sniffed from magic bytes', async () => {
  const pixels = noiseImage(2, 2);
  const image = fromRaw(pixels, { width: 2, height: 2, channels: 3 });
  assert.equal(sniffImageFormat(await image.clone().jpeg().toBuffer()), 'jpeg');
  assert.equal(sniffImageFormat(await image.clone().png().toBuffer()), 'png');
  assert.equal(sniffImageFormat(await image.clone().gif().toBuffer()), 'gif');
  assert.equal(sniffImageFormat(await image.clone().webp().toBuffer()), 'webp');
  assert.equal(sniffImageFormat(await image.clone().tiff().toBuffer()), 'tiff');
  assert.equal(sniffImageFormat(await image.clone().avif().toBuffer()), 'avif');
  assert.equal(sniffImageFormat(Buffer.from('hello')), undefined);
});
