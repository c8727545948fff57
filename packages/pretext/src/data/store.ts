// Compact on-disk sample store: one file holding a JSON header, int32 labels, optional float32
// per-frame motion scores and uint8 NHWC pixels, each section 64-byte aligned so that it can be
// viewed in place after one read per section.
//
// Layout (little-endian):
//   'PXSTORE1' | u32 header byte length | header JSON | pad | labels i32[n] | pad
//   | motion f32[n] (video stores only) | pad | pixels u8[n*h*w*c]
import { closeSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';

/** One decoded video clip inside a frame store. */
export interface ClipInfo {
  /** Source path relative to the ingested folder. */
  path: string;
  label: number;
  /** Rate the frames were sampled at. */
  fps: number;
  /** Native frame rate reported by ffprobe (0 when unknown). */
  sourceFps: number;
  frameCount: number;
  /** Index of the clip's first frame in the store. */
  firstFrame: number;
  /** Native frame size of the source. */
  sourceWidth: number;
  sourceHeight: number;
}

/**
 * Decoded samples in memory. `images` is NHWC uint8 with `channels` 3 (RGB) or 1 (grayscale, e.g.
 * Fashion-MNIST; the DataLoader's `channels: 3` repeats it into RGB). Labels are class indices into
 * `classNames`, or -1 for unlabeled samples.
 */
export interface SampleStore {
  images: Uint8Array;
  n: number;
  height: number;
  width: number;
  channels: 1 | 3;
  labels: Int32Array;
  classNames: string[];
  /** Source of every sample: a relative file path, `file#index` inside an archive, `clip#frame`. */
  paths: string[];
  clips?: ClipInfo[];
  /** Mean absolute difference to the previous frame of the same clip (0 for a clip's first frame). */
  frameMotion?: Float32Array;
  /** Hash of the source the store was built from, when it came from an ingest. */
  fingerprint?: string;
}

/** Everything in a store file except the pixel, label and motion sections. */
export interface StoreHeader {
  version: number;
  n: number;
  height: number;
  width: number;
  channels: 1 | 3;
  classNames: string[];
  paths: string[];
  clips?: ClipInfo[];
  hasMotion: boolean;
  fingerprint?: string;
  /** Free-form JSON the producer wants back on reuse (the ingest report). */
  report?: unknown;
}

const MAGIC = Buffer.from('PXSTORE1', 'latin1');
const VERSION = 1;
const ALIGN = 64;
const PREFIX_BYTES = MAGIC.length + 4;
/** Largest single read/write; keeps each syscall well below the 2 GiB limit. */
const IO_CHUNK = 1 << 30;

const alignUp = (offset: number): number => Math.ceil(offset / ALIGN) * ALIGN;

function assertLittleEndian(): void {
  if (endianness() !== 'LE') throw new Error('sample stores are little-endian; this host is big-endian');
}

interface Sections {
  labels: number;
  motion: number;
  pixels: number;
  end: number;
}

function sectionOffsets(headerBytes: number, header: StoreHeader): Sections {
  const labels = alignUp(PREFIX_BYTES + headerBytes);
  const motion = alignUp(labels + header.n * 4);
  const pixels = header.hasMotion ? alignUp(motion + header.n * 4) : motion;
  return { labels, motion, pixels, end: pixels + header.n * header.height * header.width * header.channels };
}

/** Bytes per sample (h*w*c). */
export function sampleBytes(store: Pick<SampleStore, 'height' | 'width' | 'channels'>): number {
  return store.height * store.width * store.channels;
}

/** Pixels of sample `index` as a view (no copy). */
export function sampleImage(store: SampleStore, index: number): Uint8Array {
  const bytes = sampleBytes(store);
  return store.images.subarray(index * bytes, (index + 1) * bytes);
}

/** Checks that the arrays of a store agree with its declared sizes. */
export function validateStore(store: SampleStore): void {
  const problems: string[] = [];
  if (store.channels !== 1 && store.channels !== 3) problems.push(`channels ${store.channels} is not 1 or 3`);
  if (store.images.length !== store.n * sampleBytes(store)) problems.push(`images has ${store.images.length} bytes, expected n*h*w*c`);
  if (store.labels.length !== store.n) problems.push(`labels has ${store.labels.length} entries, expected ${store.n}`);
  if (store.paths.length !== store.n) problems.push(`paths has ${store.paths.length} entries, expected ${store.n}`);
  if (store.frameMotion && store.frameMotion.length !== store.n) problems.push('frameMotion length differs from n');
  if (problems.length > 0) throw new Error(`invalid sample store: ${problems.join('; ')}`);
}

function writeFully(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.length;) {
    const chunk = bytes.subarray(done, Math.min(bytes.length, done + IO_CHUNK));
    done += writeSync(fd, chunk, 0, chunk.length, position + done);
  }
}

function readFully(fd: number, target: Uint8Array, position: number, path: string): void {
  for (let done = 0; done < target.length;) {
    const read = readSync(fd, target, done, Math.min(IO_CHUNK, target.length - done), position + done);
    if (read === 0) throw new Error(`truncated sample store ${path}`);
    done += read;
  }
}

const asBytes = (view: Int32Array | Float32Array): Uint8Array => new Uint8Array(view.buffer, view.byteOffset, view.byteLength);

/**
 * Writes `store` to `path` atomically: a temporary file in the same folder is written, fsynced and
 * renamed over `path`, so readers see either the old or the new store, never a partial one.
 */
export function writeStore(path: string, store: SampleStore, extra: { fingerprint?: string; report?: unknown } = {}): void {
  assertLittleEndian();
  validateStore(store);
  const header: StoreHeader = {
    version: VERSION,
    n: store.n,
    height: store.height,
    width: store.width,
    channels: store.channels,
    classNames: store.classNames,
    paths: store.paths,
    clips: store.clips,
    hasMotion: store.frameMotion !== undefined,
    fingerprint: extra.fingerprint ?? store.fingerprint,
    report: extra.report,
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const offsets = sectionOffsets(json.length, header);
  const prefix = Buffer.alloc(PREFIX_BYTES);
  MAGIC.copy(prefix);
  prefix.writeUInt32LE(json.length, MAGIC.length);

  mkdirSync(dirname(path), { recursive: true });
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const fd = openSync(temp, 'w');
  try {
    writeFully(fd, prefix, 0);
    writeFully(fd, json, PREFIX_BYTES);
    writeFully(fd, asBytes(store.labels), offsets.labels);
    if (store.frameMotion) writeFully(fd, asBytes(store.frameMotion), offsets.motion);
    writeFully(fd, store.images, offsets.pixels);
    ftruncateSync(fd, offsets.end); // exact length, padding included, even for an empty store
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(temp, { force: true });
    throw error;
  }
  closeSync(fd);
  renameSync(temp, path);
  syncDirectory(dirname(path));
}

/** Makes a rename durable; not every platform allows fsync on a directory. */
function syncDirectory(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // best effort
  }
}

function readHeaderFromFd(fd: number, path: string): { header: StoreHeader; headerBytes: number } {
  const prefix = Buffer.alloc(PREFIX_BYTES);
  if (readSync(fd, prefix, 0, PREFIX_BYTES, 0) !== PREFIX_BYTES || !prefix.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new Error(`${path} is not a pretext sample store (bad magic bytes)`);
  }
  const headerBytes = prefix.readUInt32LE(MAGIC.length);
  const json = Buffer.alloc(headerBytes);
  readFully(fd, json, PREFIX_BYTES, path);
  const header = JSON.parse(json.toString('utf8')) as StoreHeader;
  if (header.version !== VERSION) throw new Error(`${path}: unsupported store version ${header.version}`);
  return { header, headerBytes };
}

/** Reads only the header (sizes, class names, paths, fingerprint, report) of a store file. */
export function readStoreHeader(path: string): StoreHeader {
  const fd = openSync(path, 'r');
  try {
    return readHeaderFromFd(fd, path).header;
  } finally {
    closeSync(fd);
  }
}

/** Loads a store written by `writeStore`: one read per section, arrays are views on fresh buffers. */
export function loadStore(path: string): SampleStore {
  return loadStoreIf(path, () => true)!.store;
}

/**
 * Reads the header of a store file and, only when `accept(header)` is true, the rest as `loadStore`
 * does; returns the store with its header, or undefined when `accept` refused it.
 */
export function loadStoreIf(
  path: string,
  accept: (header: StoreHeader) => boolean,
): { store: SampleStore; header: StoreHeader } | undefined {
  assertLittleEndian();
  const fd = openSync(path, 'r');
  try {
    const { header, headerBytes } = readHeaderFromFd(fd, path);
    if (!accept(header)) return undefined;
    const offsets = sectionOffsets(headerBytes, header);
    const labels = new Int32Array(header.n);
    readFully(fd, asBytes(labels), offsets.labels, path);
    let frameMotion: Float32Array | undefined;
    if (header.hasMotion) {
      frameMotion = new Float32Array(header.n);
      readFully(fd, asBytes(frameMotion), offsets.motion, path);
    }
    const images = new Uint8Array(offsets.end - offsets.pixels);
    readFully(fd, images, offsets.pixels, path);
    const store: SampleStore = {
      images,
      n: header.n,
      height: header.height,
      width: header.width,
      channels: header.channels,
      labels,
      classNames: header.classNames,
      paths: header.paths,
      fingerprint: header.fingerprint,
    };
    if (header.clips) store.clips = header.clips;
    if (frameMotion) store.frameMotion = frameMotion;
    return { store, header };
  } finally {
    closeSync(fd);
  }
}
