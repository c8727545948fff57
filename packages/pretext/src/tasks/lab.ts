// sRGB <-> CIE L*a*b* (D65) as batched tensor ops on tensors whose dim 1 holds the three channels
// (N x 3 x H x W images or N x 3 colours). sRGB values are in [0, 1]; L in [0, 100]. The dtype of
// the input is kept (float64 for reference checks, float32 in training).
import { stack, tensor, where, type Tensor } from '@pretext/torch';

/** Linear sRGB to XYZ (IEC 61966-2-1, D65). */
const RGB_TO_XYZ = [
  [0.4124564, 0.3575761, 0.1804375],
  [0.2126729, 0.7151522, 0.072175],
  [0.0193339, 0.119192, 0.9503041],
];
/** Its published inverse. */
const XYZ_TO_RGB = [
  [3.2404542, -1.5371385, -0.4985314],
  [-0.969266, 1.8760108, 0.041556],
  [0.0556434, -0.2040259, 1.0572252],
];
/** The reference white is sRGB white's XYZ, so white is exactly L = 100, a = b = 0. */
const WHITE = RGB_TO_XYZ.map((row) => row[0] + row[1] + row[2]);
const DELTA = 6 / 29;

/** The 3 x 3 colour matrix applied to dim 1. */
function mix(x: Tensor, matrix: number[][]): Tensor {
  return x
    .movedim(1, -1)
    .matmul(tensor(matrix, { dtype: x.dtype, device: x.device }).t())
    .movedim(-1, 1);
}

/** Per-channel scale along dim 1. */
const scaled = (x: Tensor, factors: number[]) =>
  x.mul(tensor(factors, { dtype: x.dtype, device: x.device }).view([1, 3, ...Array(x.ndim - 2).fill(1)]));

/** sRGB gamma decoding; the clamps keep the branch not taken finite. */
export function srgbToLinear(rgb: Tensor): Tensor {
  return where(rgb.le(0.04045), rgb.div(12.92), rgb.clamp(0.04045).add(0.055).div(1.055).pow(2.4));
}

export function linearToSrgb(linear: Tensor): Tensor {
  return where(
    linear.le(0.0031308),
    linear.mul(12.92),
    linear
      .clamp(0.0031308)
      .pow(1 / 2.4)
      .mul(1.055)
      .sub(0.055),
  );
}

const labF = (t: Tensor) => where(t.gt(DELTA ** 3), t.clamp(DELTA ** 3).pow(1 / 3), t.div(3 * DELTA * DELTA).add(4 / 29));
const labFInverse = (f: Tensor) => where(f.gt(DELTA), f.pow(3), f.sub(4 / 29).mul(3 * DELTA * DELTA));

/** sRGB in [0, 1] to L*a*b*. */
export function rgbToLab(rgb: Tensor): Tensor {
  const [fx, fy, fz] = labF(
    scaled(
      mix(srgbToLinear(rgb), RGB_TO_XYZ),
      WHITE.map((w) => 1 / w),
    ),
  ).unbind(1);
  return stack([fy.mul(116).sub(16), fx.sub(fy).mul(500), fy.sub(fz).mul(200)], 1);
}

/** L*a*b* to linear sRGB, unclamped: a colour is in the sRGB gamut iff all three lie in [0, 1]. */
export function labToLinearRgb(lab: Tensor): Tensor {
  const [l, a, b] = lab.unbind(1);
  const fy = l.add(16).div(116);
  const f = stack([fy.add(a.div(500)), fy, fy.sub(b.div(200))], 1);
  return mix(scaled(labFInverse(f), WHITE), XYZ_TO_RGB);
}

/** L*a*b* to sRGB, out-of-gamut colours clipped to [0, 1]. */
export function labToRgb(lab: Tensor): Tensor {
  return linearToSrgb(labToLinearRgb(lab).clamp(0, 1));
}
