// Synthetic scenes as an in-memory image store (structurally a SampleStore from ../store.ts).

import { renderScene, type RenderOptions } from './render.js';

export interface SyntheticStore {
  /** N * height * width * channels sRGB bytes, NHWC. */
  images: Uint8Array;
  n: number;
  height: number;
  width: number;
  channels: 3;
  /** Unlabelled: all -1. */
  labels: Int32Array;
  classNames: string[];
  /** 'synthetic/<seed>' per image, the seed that `renderScene` re-renders it from. */
  paths: string[];
}

/** Renders scenes for seeds seed, seed + 1, ..., seed + count - 1. */
export function syntheticStore(count: number, size: number, seed: number, options: RenderOptions = {}): SyntheticStore {
  const imageBytes = size * size * 3;
  const images = new Uint8Array(count * imageBytes);
  const paths: string[] = [];
  for (let i = 0; i < count; i++) {
    images.set(renderScene(seed + i, { ...options, size }).rgb, i * imageBytes);
    paths.push(`synthetic/${seed + i}`);
  }
  return {
    images,
    n: count,
    height: size,
    width: size,
    channels: 3,
    labels: new Int32Array(count).fill(-1),
    classNames: [],
    paths,
  };
}
