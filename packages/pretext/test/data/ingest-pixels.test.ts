// Exact pixel values after ingest: colour conversions, orientation, resize and crop geometry.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { ingestImages, type IngestImagesOptions, type IngestResult } from '../../src/data/index.js';
import { fromRaw, jpegBytes, noiseImage, pixelAt, quietOptions, rawImage, tempDir, writeFile } from './fixtures.js';

const root = tempDir('ingest-pixels');
let folders = 0;

/** Ingests a folder holding only `fileName` with content `bytes`. */
async function ingestSingle(
  fileName: string,
  bytes: Uint8Array,
  size: number,
  options: Partial<IngestImagesOptions> = {},
): Promise<IngestResult> {
  const source = join(root, `case${folders++}`);
  writeFile(join(source, fileName), bytes);
  const result = await ingestImages({ source, size, out: `${source}.pxs`, ...quietOptions(), ...options });
  assert.equal(result.store.n, 1);
  return result;
}

const RED = [255, 0, 0];
const GREEN = [0, 255, 0];
const BLUE = [0, 0, 255];

test('an 8-bit RGB image that is already S x S keeps its exact pixels (PNG, WebP, TIFF, JPEG)', async () => {
  const pixels = noiseImage(16, 16);
  const image = fromRaw(pixels, { width: 16, height: 16, channels: 3 });
  for (const [name, bytes] of [
    ['a.png', await image.clone().png().toBuffer()],
    ['a.webp', await image.clone().webp({ lossless: true }).toBuffer()],
    ['a.tif', await image.clone().tiff({ compression: 'lzw' }).toBuffer()],
  ] as const) {
    const { store } = await ingestSingle(name, bytes, 16);
    assert.deepEqual(Buffer.from(store.images), pixels, name);
  }
  const jpeg = await jpegBytes(pixels, 16, 16);
  const { store } = await ingestSingle('a.jpg', jpeg, 16);
  assert.deepEqual(Buffer.from(store.images), await sharp(jpeg).raw().toBuffer(), 'JPEG decoded without resampling');
});

test('grayscale is expanded to three equal channels', async () => {
  const gray = Buffer.from([0, 50, 100, 255]);
  const png = await fromRaw(gray, { width: 2, height: 2, channels: 1 }).toColourspace('b-w').png().toBuffer();
  assert.equal((await sharp(png).metadata()).channels, 1);
  const { store } = await ingestSingle('g.png', png, 2);
  assert.deepEqual([...store.images], [0, 0, 0, 50, 50, 50, 100, 100, 100, 255, 255, 255]);
  assert.equal(store.channels, 3);
});

test('palette PNGs are expanded to their RGB colours', async () => {
  const colors = [RED, GREEN, BLUE, [10, 20, 30]];
  const pixels = Buffer.from(colors.flat());
  const png = await fromRaw(pixels, { width: 2, height: 2, channels: 3 }).png({ palette: true, colours: 4, dither: 0 }).toBuffer();
  assert.equal((await sharp(png).metadata()).isPalette, true);
  const { store } = await ingestSingle('p.png', png, 2);
  assert.deepEqual([...store.images], colors.flat());
});

test('alpha is composited on white by default, or on the given background', async () => {
  // transparent red, opaque red, half-transparent blue, transparent black
  const rgba = Buffer.from([255, 0, 0, 0, 255, 0, 0, 255, 0, 0, 255, 128, 0, 0, 0, 0]);
  const png = await fromRaw(rgba, { width: 2, height: 2, channels: 4 }).png().toBuffer();
  const onWhite = (await ingestSingle('a.png', png, 2)).store.images;
  assert.deepEqual(pixelAt(onWhite, 2, 0, 0), [255, 255, 255]);
  assert.deepEqual(pixelAt(onWhite, 2, 1, 0), RED);
  const half = pixelAt(onWhite, 2, 0, 1);
  assert.ok(Math.abs(half[0] - 127) <= 1 && Math.abs(half[1] - 127) <= 1 && half[2] === 255, `half-transparent blue on white: ${half}`);

  const onGreen = (await ingestSingle('a.png', png, 2, { background: { r: 0, g: 255, b: 0 } })).store.images;
  assert.deepEqual(pixelAt(onGreen, 2, 0, 0), GREEN);
  assert.deepEqual(pixelAt(onGreen, 2, 1, 1), GREEN);

  const grayAlpha = await fromRaw(Buffer.from([100, 0, 100, 255, 100, 0, 100, 255]), { width: 2, height: 2, channels: 2 })
    .toColourspace('b-w')
    .png()
    .toBuffer();
  assert.equal((await sharp(grayAlpha).metadata()).channels, 2);
  const gray = (await ingestSingle('ga.png', grayAlpha, 2, { background: { r: 255, g: 0, b: 0 } })).store.images;
  assert.deepEqual(pixelAt(gray, 2, 0, 0), RED, 'a transparent gray pixel shows the coloured background');
  assert.deepEqual(pixelAt(gray, 2, 1, 0), [100, 100, 100]);
});

test('16-bit PNGs are scaled to 8 bits (v >> 8)', async () => {
  const values = [0, 255, 256, 32767, 32768, 65535, 511, 1000, 40000, 65280, 12345, 54321];
  const png = await fromRaw(Uint16Array.from(values), { width: 2, height: 2, channels: 3 }).toColourspace('rgb16').png().toBuffer();
  assert.equal((await sharp(png).metadata()).depth, 'ushort');
  const { store } = await ingestSingle('deep.png', png, 2);
  assert.deepEqual(
    [...store.images],
    values.map((v) => v >> 8),
  );
});

test('the EXIF orientation is applied before cropping', async () => {
  // Stored 64x32: left half red, right half blue. Orientation 6 displays it rotated 90 degrees
  // clockwise (32x64), so the left half ends up on top.
  const pixels = rawImage(64, 32, 3, (x) => (x < 32 ? RED : BLUE));
  const jpeg = await fromRaw(pixels, { width: 64, height: 32, channels: 3 })
    .jpeg({ quality: 100, chromaSubsampling: '4:4:4' })
    .withMetadata({ orientation: 6 })
    .toBuffer();
  assert.equal((await sharp(jpeg).metadata()).orientation, 6);
  const image = (await ingestSingle('o.jpg', jpeg, 32)).store.images;
  const near = (actual: number[], expected: number[]): boolean => actual.every((v, i) => Math.abs(v - expected[i]) <= 8);
  for (const x of [0, 16, 31]) {
    assert.ok(near(pixelAt(image, 32, x, 2), RED), `top row is red at x=${x}: ${pixelAt(image, 32, x, 2)}`);
    assert.ok(near(pixelAt(image, 32, x, 29), BLUE), `bottom row is blue at x=${x}: ${pixelAt(image, 32, x, 29)}`);
  }
});

test('only the first frame of an animated GIF is kept', async () => {
  const frames = rawImage(4, 8, 3, (_, y) => (y < 4 ? RED : GREEN)); // two 4x4 pages
  const gif = await sharp(frames, { raw: { width: 4, height: 8, channels: 3, pageHeight: 4 } })
    .gif()
    .toBuffer();
  assert.equal((await sharp(gif).metadata()).pages, 2);
  const { store } = await ingestSingle('anim.gif', gif, 4);
  assert.deepEqual([...store.images], Array(16).fill(RED).flat());
});

test('the shorter side is resized to S and the centre is cropped', async () => {
  /** A PNG in red, green and blue thirds along its longer side. */
  const thirdsPng = (width: number, height: number): Promise<Buffer> => {
    const along = (x: number, y: number) => (width >= height ? x / width : y / height);
    const pixels = rawImage(width, height, 3, (x, y) => [RED, GREEN, BLUE][Math.floor(3 * along(x, y))]);
    return fromRaw(pixels, { width, height, channels: 3 }).png().toBuffer();
  };
  const allGreen = Array(32 * 32)
    .fill(GREEN)
    .flat();
  // Crop only: 96x32 landscape and 32x96 portrait keep exactly the middle third.
  assert.deepEqual([...(await ingestSingle('l.png', await thirdsPng(96, 32), 32)).store.images], allGreen);
  assert.deepEqual([...(await ingestSingle('p.png', await thirdsPng(32, 96), 32)).store.images], allGreen);
  // Resize and crop: 192x64 -> 96x32 -> middle 32 columns; only the border columns may blend.
  const big = await thirdsPng(192, 64);
  const image = (await ingestSingle('b.png', big, 32)).store.images;
  for (let y = 0; y < 32; y += 7) {
    for (let x = 3; x < 29; x++) assert.deepEqual(pixelAt(image, 32, x, y), GREEN, `(${x}, ${y})`);
    assert.ok(pixelAt(image, 32, 0, y)[1] > 200 && pixelAt(image, 32, 31, y)[1] > 200);
  }
});
