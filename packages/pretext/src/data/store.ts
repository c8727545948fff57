// Compact on-disk sample store: one file holding a JSON header, int32 labels, optional float32
// per-frame motion scores and uint8 NHWC pixels, each section 64-byte aligned so that it can be
// viewed in place after one read per section.
//
// Layout (little-endian):
//   'PXSTORE1' | u32 header byte length | header JSON | pad | labels i32[n] | pad
//   | motion f32[n] (video stores only) | pad | pixels u8[n*h*w*c]
import { closeSync, ftruncateSync, openSync, readSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { prepareOutputFile, writeFileAtomic, writeFully } from '@pretext/torch';

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
  /** What the samples were read from, as `resolveDataset` names it (`cifar10:train`, a folder, a store file). */
  origin?: string;
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
/** Largest single read; keeps each syscall well below the 2 GiB limit. */
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

function readFully(fd: number, target: Uint8Array, position: number, path: string): void {
  for (let done = 0; done < target.length;) {
    const read = readSync(fd, target, done, Math.min(IO_CHUNK, target.length - done), position + done);
    if (read === 0) throw new Error(`truncated sample store ${path}`);
    done += read;
  }
}

const asBytes = (view: Int32Array | Float32Array): Uint8Array => new Uint8Array(view.buffer, view.byteOffset, view.byteLength);

/**
 * Writes `store` to `path` atomically (writeFileAtomic), so readers see either the old or the new
 * store, never a partial one. Only an absent, empty or store file is replaced (checkStoreOutput).
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

  checkStoreOutput(path);
  writeFileAtomic(path, (fd) => {
    writeFully(fd, prefix, 0);
    writeFully(fd, json, PREFIX_BYTES);
    writeFully(fd, asBytes(store.labels), offsets.labels);
    if (store.frameMotion) writeFully(fd, asBytes(store.frameMotion), offsets.motion);
    writeFully(fd, store.images, offsets.pixels);
    ftruncateSync(fd, offsets.end); // exact length, padding included, even for an empty store
  });
}

/**
 * Checks before any work that a store can be written to `path`: its folder exists or is made, and
 * `path` is absent, empty or a store file (never a folder, a device, or another file's contents).
 */
export function checkStoreOutput(path: string): void {
  const target = prepareOutputFile(path);
  const size = statSync(target, { throwIfNoEntry: false })?.size ?? 0;
  if (size === 0) return;
  const fd = openSync(target, 'r');
  try {
    const magic = Buffer.alloc(MAGIC.length);
    readSync(fd, magic, 0, MAGIC.length, 0);
    if (!magic.equals(MAGIC)) throw new Error(`refusing to replace ${path}: it exists and is not a pretext sample store`);
  } finally {
    closeSync(fd);
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
