// Analytic ray-primitive intersections. Rays have unit-length directions; nothing here allocates.

import { BOX, CYLINDER, PLANE, SPHERE, type CompiledPrimitive } from './compile.js';

/** Face hit by the last successful intersection: box axis (0..2) or cylinder side (0) / cap (1). */
let lastFace = 0;

/** Nearest hit of a traced ray, reused across pixels. */
export class Hit {
  t = Infinity;
  /** Index into the primitive list, -1 for a miss. */
  index = -1;
  face = 0;
}

/** Bounding-sphere rejection for primitives that are costlier to intersect exactly. */
function missesBound(
  p: CompiledPrimitive,
  ox: number,
  oy: number,
  oz: number,
  dx: number,
  dy: number,
  dz: number,
  tMin: number,
  tMax: number,
): boolean {
  const ex = p.cx - ox;
  const ey = p.cy - oy;
  const ez = p.cz - oz;
  const along = ex * dx + ey * dy + ez * dz;
  const distance2 = ex * ex + ey * ey + ez * ez - along * along;
  if (distance2 > p.boundRadius2) return true;
  const halfChord = Math.sqrt(p.boundRadius2 - distance2);
  return along + halfChord < tMin || along - halfChord > tMax;
}

function intersectSphere(
  p: CompiledPrimitive,
  ox: number,
  oy: number,
  oz: number,
  dx: number,
  dy: number,
  dz: number,
  tMin: number,
  tMax: number,
): number {
  const lx = ox - p.cx;
  const ly = oy - p.cy;
  const lz = oz - p.cz;
  const b = lx * dx + ly * dy + lz * dz;
  const disc = b * b - (lx * lx + ly * ly + lz * lz - p.d);
  if (disc < 0) return Infinity;
  const root = Math.sqrt(disc);
  const near = -b - root;
  if (near > tMin && near < tMax) return near;
  const far = -b + root;
  return far > tMin && far < tMax ? far : Infinity;
}

// Running slab interval of the box test.
let slabNear = 0;
let slabFar = 0;
let slabNearAxis = 0;
let slabFarAxis = 0;

function clipSlab(origin: number, direction: number, half: number, axis: number): void {
  const inverse = 1 / direction;
  let t0 = (-half - origin) * inverse;
  let t1 = (half - origin) * inverse;
  if (t0 > t1) {
    const swap = t0;
    t0 = t1;
    t1 = swap;
  }
  if (t0 > slabNear) {
    slabNear = t0;
    slabNearAxis = axis;
  }
  if (t1 < slabFar) {
    slabFar = t1;
    slabFarAxis = axis;
  }
}

function intersectBox(
  p: CompiledPrimitive,
  ox: number,
  oy: number,
  oz: number,
  dx: number,
  dy: number,
  dz: number,
  tMin: number,
  tMax: number,
): number {
  if (missesBound(p, ox, oy, oz, dx, dy, dz, tMin, tMax)) return Infinity;
  const wx = ox - p.cx;
  const wy = oy - p.cy;
  const wz = oz - p.cz;
  slabNear = -Infinity;
  slabFar = Infinity;
  clipSlab(p.m00 * wx + p.m10 * wy + p.m20 * wz, p.m00 * dx + p.m10 * dy + p.m20 * dz, p.a, 0);
  clipSlab(p.m01 * wx + p.m11 * wy + p.m21 * wz, p.m01 * dx + p.m11 * dy + p.m21 * dz, p.b, 1);
  clipSlab(p.m02 * wx + p.m12 * wy + p.m22 * wz, p.m02 * dx + p.m12 * dy + p.m22 * dz, p.c, 2);
  if (slabNear > slabFar) return Infinity;
  if (slabNear > tMin && slabNear < tMax) {
    lastFace = slabNearAxis;
    return slabNear;
  }
  if (slabFar > tMin && slabFar < tMax) {
    lastFace = slabFarAxis;
    return slabFar;
  }
  return Infinity;
}

function intersectCylinder(
  p: CompiledPrimitive,
  ox: number,
  oy: number,
  oz: number,
  dx: number,
  dy: number,
  dz: number,
  tMin: number,
  tMax: number,
): number {
  if (missesBound(p, ox, oy, oz, dx, dy, dz, tMin, tMax)) return Infinity;
  const wx = ox - p.cx;
  const wy = oy - p.cy;
  const wz = oz - p.cz;
  const lx = p.m00 * wx + p.m10 * wy + p.m20 * wz;
  const ly = p.m01 * wx + p.m11 * wy + p.m21 * wz;
  const lz = p.m02 * wx + p.m12 * wy + p.m22 * wz;
  const ldx = p.m00 * dx + p.m10 * dy + p.m20 * dz;
  const ldy = p.m01 * dx + p.m11 * dy + p.m21 * dz;
  const ldz = p.m02 * dx + p.m12 * dy + p.m22 * dz;
  const halfHeight = p.b;
  let best = Infinity;
  let face = 0;
  // Side: x^2 + z^2 = r^2 within the height range.
  const qa = ldx * ldx + ldz * ldz;
  if (qa > 1e-12) {
    const qb = lx * ldx + lz * ldz;
    const disc = qb * qb - qa * (lx * lx + lz * lz - p.d);
    if (disc >= 0) {
      const root = Math.sqrt(disc);
      for (let k = -1; k <= 1; k += 2) {
        const t = (-qb + k * root) / qa;
        const y = ly + t * ldy;
        if (t > tMin && t < tMax && y >= -halfHeight && y <= halfHeight) {
          best = t;
          break;
        }
      }
    }
  }
  // Caps: y = +-halfHeight within the radius.
  if (ldy !== 0) {
    for (let k = -1; k <= 1; k += 2) {
      const t = (k * halfHeight - ly) / ldy;
      if (t > tMin && t < tMax && t < best) {
        const x = lx + t * ldx;
        const z = lz + t * ldz;
        if (x * x + z * z <= p.d) {
          best = t;
          face = 1;
        }
      }
    }
  }
  if (best < Infinity) lastFace = face;
  return best;
}

function intersectPlane(
  p: CompiledPrimitive,
  ox: number,
  oy: number,
  oz: number,
  dx: number,
  dy: number,
  dz: number,
  tMin: number,
  tMax: number,
): number {
  const denominator = p.a * dx + p.b * dy + p.c * dz;
  if (denominator === 0) return Infinity;
  const t = (p.d - (p.a * ox + p.b * oy + p.c * oz)) / denominator;
  return t > tMin && t < tMax ? t : Infinity;
}

/** Ray parameter of the first hit in (tMin, tMax), or Infinity. */
export function intersectPrimitive(
  p: CompiledPrimitive,
  ox: number,
  oy: number,
  oz: number,
  dx: number,
  dy: number,
  dz: number,
  tMin: number,
  tMax: number,
): number {
  switch (p.kind) {
    case SPHERE:
      return intersectSphere(p, ox, oy, oz, dx, dy, dz, tMin, tMax);
    case BOX:
      return intersectBox(p, ox, oy, oz, dx, dy, dz, tMin, tMax);
    case CYLINDER:
      return intersectCylinder(p, ox, oy, oz, dx, dy, dz, tMin, tMax);
    case PLANE:
      return intersectPlane(p, ox, oy, oz, dx, dy, dz, tMin, tMax);
    default:
      return Infinity;
  }
}

/** Fills `hit` with the nearest intersection in (0, tMax); returns whether anything was hit. */
export function traceNearest(
  primitives: readonly CompiledPrimitive[],
  ox: number,
  oy: number,
  oz: number,
  dx: number,
  dy: number,
  dz: number,
  tMax: number,
  hit: Hit,
): boolean {
  let best = tMax;
  hit.index = -1;
  for (let i = 0; i < primitives.length; i++) {
    const t = intersectPrimitive(primitives[i], ox, oy, oz, dx, dy, dz, 0, best);
    if (t < best) {
      best = t;
      hit.index = i;
      hit.face = lastFace;
    }
  }
  hit.t = hit.index < 0 ? Infinity : best;
  return hit.index >= 0;
}

/** Whether anything blocks the ray within (0, tMax). */
export function occluded(
  primitives: readonly CompiledPrimitive[],
  ox: number,
  oy: number,
  oz: number,
  dx: number,
  dy: number,
  dz: number,
  tMax: number,
): boolean {
  for (let i = 0; i < primitives.length; i++) {
    if (intersectPrimitive(primitives[i], ox, oy, oz, dx, dy, dz, 0, tMax) < tMax) return true;
  }
  return false;
}

/**
 * Writes the outward world-space unit normal at surface point (px, py, pz) of `p` into out[0..2],
 * using the face recorded by the intersection, and the local (texture-frame) coordinates into out[3..5].
 */
export function surfaceFrame(p: CompiledPrimitive, face: number, px: number, py: number, pz: number, out: Float64Array): void {
  const wx = px - p.cx;
  const wy = py - p.cy;
  const wz = pz - p.cz;
  const lx = p.m00 * wx + p.m10 * wy + p.m20 * wz;
  const ly = p.m01 * wx + p.m11 * wy + p.m21 * wz;
  const lz = p.m02 * wx + p.m12 * wy + p.m22 * wz;
  out[3] = lx;
  out[4] = ly;
  out[5] = lz;
  // Local-frame normal, rotated to world below (planes and spheres are direct).
  let nx = 0;
  let ny = 0;
  let nz = 0;
  switch (p.kind) {
    case SPHERE: {
      const inverseRadius = 1 / p.a;
      out[0] = wx * inverseRadius;
      out[1] = wy * inverseRadius;
      out[2] = wz * inverseRadius;
      return;
    }
    case PLANE:
      out[0] = p.a;
      out[1] = p.b;
      out[2] = p.c;
      out[4] = 0;
      return;
    case BOX:
      if (face === 0) nx = lx >= 0 ? 1 : -1;
      else if (face === 1) ny = ly >= 0 ? 1 : -1;
      else nz = lz >= 0 ? 1 : -1;
      break;
    case CYLINDER:
      if (face === 1) ny = ly >= 0 ? 1 : -1;
      else {
        const inverseRadial = 1 / Math.sqrt(lx * lx + lz * lz);
        nx = lx * inverseRadial;
        nz = lz * inverseRadial;
      }
      break;
  }
  out[0] = p.m00 * nx + p.m01 * ny + p.m02 * nz;
  out[1] = p.m10 * nx + p.m11 * ny + p.m12 * nz;
  out[2] = p.m20 * nx + p.m21 * ny + p.m22 * nz;
}
