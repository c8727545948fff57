// Helpers for the data tests: temporary folders, synthetic images and quiet ingest options.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import sharp, { type Sharp } from 'sharp';

/** A fresh temporary folder, removed when the test file ends. */
export { tempDir } from '../temp.js';

/** Pixels of a width x height image with `channels` channels; `color(x, y)` gives one pixel. */
export function rawImage(width: number, height: number, channels: number, color: (x: number, y: number) => number[]): Buffer {
  const pixels = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) pixels.set(color(x, y), (y * width + x) * channels);
  }
  return pixels;
}

/** Deterministic noise, so that exact-pixel comparisons mean something. */
export function noiseImage(width: number, height: number, seed = 1): Buffer {
  let state = seed;
  return rawImage(width, height, 3, () => [0, 1, 2].map(() => ((state = (state * 1103515245 + 12345) >>> 0) >>> 16) & 255));
}

export interface RawShape {
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
}

/** A sharp pipeline over raw pixels (8-bit Buffer or 16-bit Uint16Array). */
export const fromRaw = (pixels: Buffer | Uint16Array, shape: RawShape): Sharp => sharp(pixels, { raw: shape });

/** Writes `data` to `path`, creating parent folders. */
export function writeFile(path: string, data: string | Uint8Array): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
  return path;
}

/** Encodes raw RGB pixels as PNG (lossless) at `path`. */
export async function writePng(path: string, pixels: Buffer, width: number, height: number): Promise<string> {
  return writeFile(path, await fromRaw(pixels, { width, height, channels: 3 }).png().toBuffer());
}

/** Encodes raw RGB pixels as a high-quality JPEG at `path` and returns the encoded bytes. */
export async function jpegBytes(pixels: Buffer, width: number, height: number): Promise<Buffer> {
  return fromRaw(pixels, { width, height, channels: 3 }).jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer();
}

/** Ingest options that keep the test output clean; `lines` collects what would be logged. */
export function quietOptions(): { log: (line: string) => void; onProgress: () => void; lines: string[] } {
  const lines: string[] = [];
  return { log: (line) => lines.push(line), onProgress: () => {}, lines };
}

/** Pixel (x, y) of an NHWC RGB image of side `width`. */
export function pixelAt(image: Uint8Array, width: number, x: number, y: number): number[] {
  const offset = (y * width + x) * 3;
  return [...image.subarray(offset, offset + 3)];
}
