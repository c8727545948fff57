// A tiny video frame store for the frame-order and clip-evaluation tests: moving squares.
import type { ClipInfo, SampleStore } from '../../src/data/store.js';
import { meanAbsoluteDifference } from '../../src/data/video.js';

export const SIZE = 16;
const SQUARE = 4;
/** Frames a clip stands still before its square starts to move. */
export const STILL = 8;
export const FRAMES = 21;
export const FPS = 4;

export interface ClipSpec {
  path: string;
  label: number;
  /** Gray level of the background. */
  background: number;
  /** Where the square moves: 0 right, 1 left, 2 down, 3 up (default the clip number mod 4). */
  direction?: number;
}

/** Clips named clip{c}.avi with labels alternating 0, 1 and five background levels. */
export const numberedClips = (count: number): ClipSpec[] =>
  Array.from({ length: count }, (_, c) => ({ path: `c${c}/clip${c}.avi`, label: c % 2, background: 40 + 10 * (c % 5) }));

/**
 * Clips of FRAMES frames: a bright square on a plain background, still for STILL frames, then moving
 * one pixel a frame along the clip's direction. Motion scores as ingest computes them.
 */
export function clipStore(specs: ClipSpec[], classNames = ['a', 'b']): SampleStore {
  const frameBytes = SIZE * SIZE * 3;
  const n = specs.length * FRAMES;
  const images = new Uint8Array(n * frameBytes);
  const clips: ClipInfo[] = specs.map((spec, c) => ({
    path: spec.path,
    label: spec.label,
    fps: FPS,
    sourceFps: 30,
    frameCount: FRAMES,
    firstFrame: c * FRAMES,
    sourceWidth: 64,
    sourceHeight: 64,
  }));
  const frame = (i: number) => images.subarray(i * frameBytes, (i + 1) * frameBytes);
  specs.forEach((spec, c) => {
    for (let t = 0; t < FRAMES; t++) {
      const along = Math.min(Math.max(0, t - STILL), SIZE - SQUARE);
      const direction = spec.direction ?? c % 4;
      const position = direction % 2 === 0 ? along : SIZE - SQUARE - along;
      const [y0, x0] = direction < 2 ? [6, position] : [position, 6];
      const pixels = frame(c * FRAMES + t);
      pixels.fill(spec.background);
      for (let y = y0; y < y0 + SQUARE; y++) for (let x = x0; x < x0 + SQUARE; x++) pixels.set([250, 220, 200], (y * SIZE + x) * 3);
    }
  });
  const frameMotion = Float32Array.from({ length: n }, (_, i) => (i % FRAMES > 0 ? meanAbsoluteDifference(frame(i - 1), frame(i)) : 0));
  return {
    images,
    n,
    height: SIZE,
    width: SIZE,
    channels: 3,
    labels: Int32Array.from({ length: n }, (_, i) => clips[Math.floor(i / FRAMES)].label),
    classNames,
    paths: Array.from({ length: n }, (_, i) => `${specs[Math.floor(i / FRAMES)].path}#${i % FRAMES}`),
    clips,
    frameMotion,
  };
}
