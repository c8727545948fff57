// Preview grid: one row per sample with RGB | depth | normals | contours tiles.

import { renderScene, type RenderOptions, type SceneSample } from './render.js';

export interface GridImage {
  /** HWC RGB bytes. */
  rgb: Uint8Array;
  width: number;
  height: number;
}

const TILES = 4;
const GAP = 2;
const GAP_GRAY = 40;

type Rgb = [number, number, number];

/** Turbo colormap (polynomial approximation), t in [0, 1] from blue to red. */
function turbo(t: number): Rgb {
  const channel = (c: number[]): number => {
    const v = c[0] + t * (c[1] + t * (c[2] + t * (c[3] + t * (c[4] + t * c[5]))));
    return Math.round(255 * Math.min(1, Math.max(0, v)));
  };
  return [
    channel([0.13572138, 4.6153926, -42.66032258, 132.13108234, -152.94239396, 59.28637943]),
    channel([0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604]),
    channel([0.1066733, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973]),
  ];
}

/** A stable, dim color per instance id. */
function instanceTint(id: number): Rgb {
  if (id === 0) return [0, 0, 0];
  const hue = ((id * 0.618034) % 1) * 6;
  const ramp = (offset: number): number => Math.round(90 * Math.max(0, Math.min(1, Math.abs(((hue + offset) % 6) - 3) - 1)));
  return [ramp(0), ramp(4), ramp(2)];
}

/** Per-pixel tile colors of one sample, in tile order. */
function tilePixel(sample: SceneSample, tile: number, k: number, disparityRange: [number, number]): Rgb {
  switch (tile) {
    case 0:
      return [sample.rgb[3 * k], sample.rgb[3 * k + 1], sample.rgb[3 * k + 2]];
    case 1: {
      if (!sample.mask[k]) return [0, 0, 0];
      const [low, high] = disparityRange;
      return turbo(high > low ? (1 / sample.depth[k] - low) / (high - low) : 1);
    }
    case 2: {
      if (!sample.mask[k]) return [0, 0, 0];
      const n = sample.normals;
      return [0, 1, 2].map((c) => Math.round(127.5 * (n[3 * k + c] + 1))) as Rgb;
    }
    default:
      return sample.contours[k] ? [255, 255, 255] : instanceTint(sample.instances[k]);
  }
}

/** Inverse-depth range over hit pixels, so near objects get contrast despite the distant ground. */
function disparityRange(sample: SceneSample): [number, number] {
  let low = Infinity;
  let high = -Infinity;
  for (let k = 0; k < sample.depth.length; k++) {
    if (!sample.mask[k]) continue;
    const disparity = 1 / sample.depth[k];
    low = Math.min(low, disparity);
    high = Math.max(high, disparity);
  }
  return [low, high];
}

/** Lays samples out one per row; all samples must share one size. */
export function renderGrid(samples: SceneSample[]): GridImage {
  const size = samples.length > 0 ? samples[0].size : 0;
  const width = TILES * size + (TILES + 1) * GAP;
  const height = samples.length * size + (samples.length + 1) * GAP;
  const rgb = new Uint8Array(width * height * 3).fill(GAP_GRAY);
  samples.forEach((sample, row) => {
    if (sample.size !== size) throw new Error(`renderGrid: sample ${row} has size ${sample.size}, expected ${size}`);
    const range = disparityRange(sample);
    const top = GAP + row * (size + GAP);
    for (let tile = 0; tile < TILES; tile++) {
      const left = GAP + tile * (size + GAP);
      for (let i = 0; i < size; i++) {
        for (let j = 0; j < size; j++) {
          rgb.set(tilePixel(sample, tile, i * size + j, range), ((top + i) * width + left + j) * 3);
        }
      }
    }
  });
  return { rgb, width, height };
}

/** Renders `count` scenes (seeds seed..seed + count - 1) and writes their grid as a PNG. */
export async function writeSyntheticGrid(
  path: string,
  count: number,
  size: number,
  seed: number,
  options: RenderOptions = {},
): Promise<void> {
  const samples = Array.from({ length: count }, (_, i) => renderScene(seed + i, { ...options, size }));
  const grid = renderGrid(samples);
  const { default: sharp } = await import('sharp');
  await sharp(Buffer.from(grid.rgb.buffer, grid.rgb.byteOffset, grid.rgb.byteLength), {
    raw: { width: grid.width, height: grid.height, channels: 3 },
  })
    .png()
    .toFile(path);
}
