// Procedural solid textures (checker, stripes, marble) evaluated in a primitive's local frame.

import { CHECKER, MARBLE, SOLID, STRIPES, type CompiledPrimitive } from './compile.js';

const TWO_PI = 2 * Math.PI;

/** Hash of an integer lattice point to [0, 1). */
function latticeValue(ix: number, iy: number, iz: number): number {
  let h = Math.imul(ix, 0x27d4eb2d) ^ Math.imul(iy, 0x165667b1) ^ Math.imul(iz, 0x1b873593);
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}

function fade(t: number): number {
  return t * t * (3 - 2 * t);
}

function lerp(a: number, b: number, t: number): number {
  return a + (b - a) * t;
}

/** Smoothly interpolated value noise in [0, 1). */
function valueNoise(x: number, y: number, z: number): number {
  const fx = Math.floor(x);
  const fy = Math.floor(y);
  const fz = Math.floor(z);
  const ix = fx | 0;
  const iy = fy | 0;
  const iz = fz | 0;
  const u = fade(x - fx);
  const v = fade(y - fy);
  const w = fade(z - fz);
  const x00 = lerp(latticeValue(ix, iy, iz), latticeValue(ix + 1, iy, iz), u);
  const x10 = lerp(latticeValue(ix, iy + 1, iz), latticeValue(ix + 1, iy + 1, iz), u);
  const x01 = lerp(latticeValue(ix, iy, iz + 1), latticeValue(ix + 1, iy, iz + 1), u);
  const x11 = lerp(latticeValue(ix, iy + 1, iz + 1), latticeValue(ix + 1, iy + 1, iz + 1), u);
  return lerp(lerp(x00, x10, v), lerp(x01, x11, v), w);
}

/** Three octaves of folded noise, roughly in [0, 1]. */
function turbulence(x: number, y: number, z: number): number {
  let sum = 0;
  let amplitude = 0.5;
  let frequency = 1;
  for (let octave = 0; octave < 3; octave++) {
    sum += amplitude * Math.abs(2 * valueNoise(x * frequency, y * frequency, z * frequency) - 1);
    amplitude *= 0.5;
    frequency *= 2;
  }
  return sum / 0.875;
}

/** Weight of `color2` in [0, 1] at local point (lx, ly, lz). */
function patternWeight(p: CompiledPrimitive, lx: number, ly: number, lz: number): number {
  const s = p.textureScale;
  const x = (lx + p.offsetX) * s;
  const y = (ly + p.offsetY) * s;
  const z = (lz + p.offsetZ) * s;
  switch (p.texture) {
    case CHECKER:
      return (Math.floor(x) + Math.floor(y) + Math.floor(z)) & 1;
    case STRIPES: {
      const wave = Math.sin(TWO_PI * (x * p.axisX + y * p.axisY + z * p.axisZ));
      return Math.min(1, Math.max(0, 0.5 + 2 * wave));
    }
    case MARBLE: {
      const phase = TWO_PI * (x * p.axisX + y * p.axisY + z * p.axisZ) + 5 * turbulence(x, y, z);
      const vein = 0.5 + 0.5 * Math.sin(phase);
      return vein * vein * vein;
    }
    default:
      return 0;
  }
}

/** Writes the linear RGB albedo at local point (lx, ly, lz) into out[0..2]. */
export function albedo(p: CompiledPrimitive, lx: number, ly: number, lz: number, out: Float64Array): void {
  const weight = p.texture === SOLID ? 0 : patternWeight(p, lx, ly, lz);
  out[0] = lerp(p.red, p.red2, weight);
  out[1] = lerp(p.green, p.green2, weight);
  out[2] = lerp(p.blue, p.blue2, weight);
}
