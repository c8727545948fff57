// Image folders -> SampleStore, decoded with sharp (libvips).
//
// Every image becomes 8-bit RGB: grayscale and palette images are expanded, alpha is composited on
// `background`, 16-bit samples are scaled by libvips (v >> 8), the EXIF orientation is applied and
// only the first frame of an animation is kept. Then the shorter side is resized to `size`
// (Lanczos-3) and the centre is cropped; images that are already size x size keep their exact pixels.
//
// Decodes run on the libuv threadpool, one libvips thread each (sharp's default on glibc): at most
// UV_THREADPOOL_SIZE (default 4) images decode at once, so raise it on machines with more cores.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import sharp from 'sharp';
import {
  defaultConcurrency,
  describeFsError,
  firstLine,
  forEachConcurrent,
  ingestSource,
  SkippedFileError,
  type IngestCommonOptions,
  type IngestResult,
  type SourceFile,
} from './source.js';
import { sampleBytes, type SampleStore } from './store.js';

export interface RgbColor {
  r: number;
  g: number;
  b: number;
}

/** libvips strictness: abort on truncated data only, on decode errors too (default), or even on warnings. */
export type DecodeStrictness = 'truncated' | 'error' | 'warning';

export interface IngestImagesOptions extends IngestCommonOptions {
  /**
   * Output side S: every image becomes S x S RGB. Default: the images' own size when they all
   * share one no larger than MAX_NATIVE_SIZE (the shorter side), else DEFAULT_IMAGE_SIZE.
   */
  size?: number;
  /** Colour transparent pixels are composited on (default white). */
  background?: RgbColor;
  /** Images with more pixels (width x height) are skipped (default sharp's 268402689). */
  pixelLimit?: number;
  strictness?: DecodeStrictness;
}

export const DEFAULT_PIXEL_LIMIT = 0x3fff * 0x3fff;
/** The side images of differing (or large) sizes are ingested at when no size is given. */
export const DEFAULT_IMAGE_SIZE = 64;
/** The largest shared native side kept as is when no size is given. */
export const MAX_NATIVE_SIZE = 128;
const SYNC_READ_BYTES = 256 * 1024;
const WHITE: RgbColor = { r: 255, g: 255, b: 255 };

/** Container formats recognised from their first bytes. */
export type ImageFormat = 'jpeg' | 'png' | 'gif' | 'webp' | 'tiff' | 'avif' | 'heif' | 'bmp';

const EXTENSION_FORMATS: Record<string, ImageFormat> = {
  '.jpg': 'jpeg',
  '.jpeg': 'jpeg',
  '.jpe': 'jpeg',
  '.jfif': 'jpeg',
  '.png': 'png',
  '.gif': 'gif',
  '.webp': 'webp',
  '.tif': 'tiff',
  '.tiff': 'tiff',
  '.avif': 'avif',
  '.heic': 'heif',
  '.heif': 'heif',
  '.bmp': 'bmp',
};

const startsWith = (bytes: Uint8Array, prefix: number[], at = 0): boolean => prefix.every((value, i) => bytes[at + i] === value);
const ascii = (text: string): number[] => [...text].map((char) => char.charCodeAt(0));

/** The image format of a file's content from its magic bytes, or undefined. */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (startsWith(bytes, ascii('GIF87a')) || startsWith(bytes, ascii('GIF89a'))) return 'gif';
  if (startsWith(bytes, ascii('RIFF')) && startsWith(bytes, ascii('WEBP'), 8)) return 'webp';
  if (startsWith(bytes, ascii('II*\0')) || startsWith(bytes, ascii('MM\0*'))) return 'tiff';
  if (startsWith(bytes, ascii('ftyp'), 4)) {
    const brand = String.fromCharCode(...bytes.subarray(8, 12));
    return brand === 'avif' || brand === 'avis' ? 'avif' : 'heif';
  }
  if (startsWith(bytes, ascii('BM'))) return 'bmp';
  return undefined;
}

/** First line of a libvips error (its lines repeat). */
const errorLine = (error: unknown): string => firstLine(String((error as Error).message ?? error));

const END_MARKERS: Partial<Record<ImageFormat, number[]>> = {
  jpeg: [0xff, 0xd9], // EOI
  png: ascii('IEND'),
  gif: [0x3b], // trailer
};

/** Whether a file lacks its format's end marker near the end (data may trail the marker). */
function lacksEndMarker(bytes: Uint8Array, format: ImageFormat): boolean {
  const marker = END_MARKERS[format];
  if (!marker) return false;
  const tail = Buffer.from(bytes.subarray(Math.max(0, bytes.length - 1024)));
  return tail.indexOf(Buffer.from(marker)) < 0;
}

/**
 * Reason for a failed decode. libvips keeps one error buffer for all threads, so under parallel
 * decodes a message can be lost ("Unknown error"): truncation is also detected from the bytes.
 */
function decodeFailure(error: unknown, bytes: Uint8Array, format: ImageFormat): string {
  const message = errorLine(error);
  if (/unsupported image format/i.test(message)) return `${format} content that this build of sharp cannot decode`;
  if (/premature end|truncated|unexpected end/i.test(message) || lacksEndMarker(bytes, format)) return `truncated ${format} (${message})`;
  return `corrupt ${format} (${message})`;
}

interface ImageSettings {
  size: number;
  background: RgbColor;
  pixelLimit: number;
  strictness: DecodeStrictness;
}

/** Decodes one file to size x size RGB, or throws SkippedFileError with the reason. */
async function decodeImageFile(file: SourceFile, settings: ImageSettings): Promise<{ value: Buffer; warnings: string[] }> {
  let bytes: Buffer;
  try {
    // Small files are read synchronously: four threadpool round trips cost more than the read.
    bytes = file.size <= SYNC_READ_BYTES ? readFileSync(file.path) : await readFile(file.path);
  } catch (error) {
    throw new SkippedFileError(describeFsError(error));
  }
  if (bytes.length === 0) throw new SkippedFileError('empty file (0 bytes)');
  const extension = extname(file.relPath).toLowerCase();
  const format = sniffImageFormat(bytes);
  if (!format)
    throw new SkippedFileError(`not an image (content matches no known image format${extension ? `; extension ${extension}` : ''})`);
  const warnings: string[] = [];
  const claimed = EXTENSION_FORMATS[extension];
  if (claimed !== format) {
    const said = claimed ? `extension ${extension} says ${claimed}` : `extension '${extension}' is not an image extension`;
    warnings.push(`${said} but the content is ${format}; decoded as ${format}`);
  }

  const { size, background, pixelLimit, strictness } = settings;
  try {
    const { data, info } = await sharp(bytes, { failOn: strictness, limitInputPixels: pixelLimit, autoOrient: true })
      .pipelineColourspace('srgb')
      .flatten({ background })
      .resize(size, size, { fit: 'cover', position: 'centre' })
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.width !== size || info.height !== size || info.channels !== 3) {
      throw new Error(`unexpected decoded shape ${info.width}x${info.height}x${info.channels}`);
    }
    return { value: data, warnings };
  } catch (error) {
    if (/pixel limit/i.test(errorLine(error))) {
      const meta = await sharp(bytes, { limitInputPixels: false })
        .metadata()
        .catch(() => undefined);
      const dims = meta?.width && meta.height ? `${meta.width}x${meta.height} = ${meta.width * meta.height} pixels ` : '';
      throw new SkippedFileError(`image too large: ${dims}exceeds the pixel limit of ${pixelLimit}`);
    }
    throw new SkippedFileError(decodeFailure(error, bytes, format));
  }
}

/** Width x height of an image after its EXIF orientation, from its header; undefined when unreadable. */
async function orientedSize(file: SourceFile): Promise<string | undefined> {
  const read = async (bytes: Buffer) => {
    const meta = await sharp(bytes).metadata();
    const swap = (meta.orientation ?? 1) >= 5;
    return meta.width && meta.height ? (swap ? `${meta.height}x${meta.width}` : `${meta.width}x${meta.height}`) : undefined;
  };
  try {
    const head = Buffer.alloc(Math.min(file.size, 64 * 1024));
    const fd = openSync(file.path, 'r');
    try {
      readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
    return await read(head).catch(async () => read(await readFile(file.path)));
  } catch {
    return undefined; // the decode skips it with the reason
  }
}

/**
 * The side to ingest at when none is given: the images' shared size (its shorter side) when every
 * readable image has the same width x height and that side is at most MAX_NATIVE_SIZE, else
 * DEFAULT_IMAGE_SIZE. Reads headers only; says what it chose and why.
 */
export async function chooseImageSize(files: SourceFile[], concurrency: number, log: (line: string) => void): Promise<number> {
  const sizes = new Map<string, number>();
  await forEachConcurrent(files.length, concurrency, async (index) => {
    const size = await orientedSize(files[index]);
    if (size) sizes.set(size, (sizes.get(size) ?? 0) + 1);
  });
  const how = `(give --size or --image-size to choose)`;
  if (sizes.size === 1) {
    const [[shared, count]] = sizes;
    const side = Math.min(...shared.split('x').map(Number));
    if (side <= MAX_NATIVE_SIZE) {
      log(`images: all ${count} are ${shared}: ingesting at their own size, ${side}x${side} ${how}`);
      return side;
    }
    log(
      `images: all ${count} are ${shared}, larger than ${MAX_NATIVE_SIZE} px: ingesting at the default ${DEFAULT_IMAGE_SIZE}x${DEFAULT_IMAGE_SIZE} ${how}`,
    );
    return DEFAULT_IMAGE_SIZE;
  }
  const common = [...sizes]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([size, count]) => `${count} of ${size}`);
  const differ =
    sizes.size === 0 ? 'no readable image header' : `${sizes.size} different sizes (${common.join(', ')}${sizes.size > 3 ? ', ...' : ''})`;
  log(`images: ${differ}: ingesting at the default ${DEFAULT_IMAGE_SIZE}x${DEFAULT_IMAGE_SIZE} ${how}`);
  return DEFAULT_IMAGE_SIZE;
}

function assembleImages(size: number, classNames: string[], files: SourceFile[], decoded: (Buffer | undefined)[]): SampleStore {
  const kept = files.flatMap((file, index) => (decoded[index] ? [{ file, pixels: decoded[index] }] : []));
  const shape = { height: size, width: size, channels: 3 as const };
  const images = new Uint8Array(kept.length * sampleBytes(shape));
  kept.forEach(({ pixels }, index) => images.set(pixels, index * pixels.length));
  return {
    images,
    n: kept.length,
    ...shape,
    labels: Int32Array.from(kept, ({ file }) => file.label),
    classNames,
    paths: kept.map(({ file }) => file.relPath),
  };
}

/**
 * Ingests a folder of images (flat = unlabeled, or class subfolders) into the store file `out`.
 * Bad files are skipped with a warning and listed in the report; the cached store is returned
 * unchanged when the source files and settings have the same fingerprint.
 */
export async function ingestImages(options: IngestImagesOptions): Promise<IngestResult> {
  if (options.size !== undefined && (!Number.isInteger(options.size) || options.size < 1))
    throw new Error(`size must be a positive integer, got ${options.size}`);
  const settings: ImageSettings = {
    size: options.size ?? DEFAULT_IMAGE_SIZE,
    background: { ...WHITE, ...options.background },
    pixelLimit: options.pixelLimit ?? DEFAULT_PIXEL_LIMIT,
    strictness: options.strictness ?? 'error',
  };
  const concurrency = options.concurrency ?? defaultConcurrency();
  return ingestSource(options, {
    kind: 'images',
    settings: { ...settings, size: options.size ?? `auto:${DEFAULT_IMAGE_SIZE}:${MAX_NATIVE_SIZE}`, decoder: 'sharp-v1' },
    concurrency,
    prepare:
      options.size === undefined
        ? async (listing, log) => {
            settings.size = await chooseImageSize(listing.files, concurrency, log);
          }
        : undefined,
    decode: (file) => decodeImageFile(file, settings),
    assemble: (listing, decoded) => assembleImages(settings.size, listing.classNames, listing.files, decoded),
  });
}

export interface IngestImagesCachedOptions extends Omit<IngestImagesOptions, 'out'> {
  /** Folder the store is written to. */
  cacheDir: string;
  /** The store is `<cacheDir>/<prefix><tag>.pxs`, `tag` being the first `tagLength` hex digits of sha256(`key`). */
  prefix?: string;
  /** What names the store (default the resolved source path). */
  key?: string;
  tagLength?: number;
}

/** `ingestImages` into a cache file named after a hash of the source, so that every source folder gets its own store. */
export async function ingestImagesCached(options: IngestImagesCachedOptions): Promise<IngestResult> {
  const { cacheDir, prefix = '', key = resolve(options.source), tagLength = 12, ...ingest } = options;
  const tag = createHash('sha256').update(key).digest('hex').slice(0, tagLength);
  return ingestImages({ ...ingest, out: join(cacheDir, `${prefix}${tag}.pxs`) });
}
