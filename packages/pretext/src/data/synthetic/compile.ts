// Flattens a SceneDescription into fixed-shape numeric records for the per-pixel loops.

import { cross, dot, normalize, sub, type Vec3 } from './math.js';
import type { Camera, Primitive, SceneDescription, TextureKind } from './scene.js';

export const SPHERE = 0;
export const BOX = 1;
export const CYLINDER = 2;
export const PLANE = 3;

export const SOLID = 0;
export const CHECKER = 1;
export const STRIPES = 2;
export const MARBLE = 3;

const TEXTURE_CODES: Record<TextureKind, number> = { solid: SOLID, checker: CHECKER, stripes: STRIPES, marble: MARBLE };

/** One primitive with its local frame, shape parameters and material as plain numbers (one hidden class). */
export class CompiledPrimitive {
  kind = SPHERE;
  id = 0;
  // Local frame origin and rotation (local -> world, row-major); world -> local is the transpose.
  cx = 0;
  cy = 0;
  cz = 0;
  m00 = 1;
  m01 = 0;
  m02 = 0;
  m10 = 0;
  m11 = 1;
  m12 = 0;
  m20 = 0;
  m21 = 0;
  m22 = 1;
  /** sphere: radius; box: half extents (a, b, c); cylinder: radius (a), half height (b); plane: normal (a, b, c). */
  a = 0;
  b = 0;
  c = 0;
  /** sphere, cylinder: radius squared; plane: offset. */
  d = 0;
  /** Squared radius of a bounding sphere around the center (box, cylinder early-out). */
  boundRadius2 = 0;
  // Material.
  texture = SOLID;
  red = 0;
  green = 0;
  blue = 0;
  red2 = 0;
  green2 = 0;
  blue2 = 0;
  textureScale = 1;
  axisX = 1;
  axisY = 0;
  axisZ = 0;
  offsetX = 0;
  offsetY = 0;
  offsetZ = 0;
  specular = 0;
  shininess = 32;
}

export class CompiledLight {
  directional = true;
  /** Direction toward the light (directional) or light position (point). */
  x = 0;
  y = 0;
  z = 0;
  /** color * intensity */
  red = 0;
  green = 0;
  blue = 0;
}

/** Camera basis: pixel (row i, col j) looks along forward + sx * tanHalfFov * right + sy * tanHalfFov * up. */
export interface CameraBasis {
  position: Vec3;
  forward: Vec3;
  right: Vec3;
  up: Vec3;
  tanHalfFov: number;
  far: number;
}

export function cameraBasis(camera: Camera): CameraBasis {
  const forward = normalize(sub(camera.target, camera.position));
  const right = normalize(cross(forward, camera.up));
  const up = cross(right, forward);
  const tanHalfFov = Math.tan((camera.fovDegrees * Math.PI) / 360);
  return { position: camera.position, forward, right, up, tanHalfFov, far: camera.far };
}

/** Any unit vector orthogonal to `n` (unit length). */
function orthogonal(n: Vec3): Vec3 {
  const helper: Vec3 = Math.abs(n[0]) < 0.9 ? [1, 0, 0] : [0, 1, 0];
  return normalize(cross(helper, n));
}

function setFrame(out: CompiledPrimitive, center: Vec3, m: readonly number[]): void {
  [out.cx, out.cy, out.cz] = center;
  [out.m00, out.m01, out.m02, out.m10, out.m11, out.m12, out.m20, out.m21, out.m22] = m;
}

export function compilePrimitive(p: Primitive): CompiledPrimitive {
  const out = new CompiledPrimitive();
  out.id = p.id;
  switch (p.kind) {
    case 'sphere':
      out.kind = SPHERE;
      setFrame(out, p.center, p.rotation);
      out.a = p.radius;
      out.d = p.radius * p.radius;
      out.boundRadius2 = out.d;
      break;
    case 'box':
      out.kind = BOX;
      setFrame(out, p.center, p.rotation);
      [out.a, out.b, out.c] = p.halfExtents;
      out.boundRadius2 = dot(p.halfExtents, p.halfExtents);
      break;
    case 'cylinder':
      out.kind = CYLINDER;
      setFrame(out, p.center, p.rotation);
      out.a = p.radius;
      out.b = p.halfHeight;
      out.d = p.radius * p.radius;
      out.boundRadius2 = out.d + p.halfHeight * p.halfHeight;
      break;
    case 'plane': {
      out.kind = PLANE;
      [out.a, out.b, out.c] = p.normal;
      out.d = p.offset;
      // Texture frame: local y along the normal, local x/z spanning the plane.
      const n = p.normal;
      const u = orthogonal(n);
      const v = cross(u, n);
      const origin: Vec3 = [n[0] * p.offset, n[1] * p.offset, n[2] * p.offset];
      setFrame(out, origin, [u[0], n[0], v[0], u[1], n[1], v[1], u[2], n[2], v[2]]);
      out.boundRadius2 = Infinity;
      break;
    }
  }
  const material = p.material;
  [out.red, out.green, out.blue] = material.color;
  out.specular = material.specular ?? 0;
  out.shininess = material.shininess ?? 32;
  const texture = material.texture;
  if (texture) {
    out.texture = TEXTURE_CODES[texture.kind];
    [out.red2, out.green2, out.blue2] = texture.color2;
    out.textureScale = texture.scale;
    [out.axisX, out.axisY, out.axisZ] = normalize(texture.axis);
    [out.offsetX, out.offsetY, out.offsetZ] = texture.offset;
  }
  return out;
}

export interface CompiledScene {
  primitives: CompiledPrimitive[];
  lights: CompiledLight[];
  camera: CameraBasis;
  ambient: number;
  skyZenith: Vec3;
  skyHorizon: Vec3;
}

export function compileScene(scene: SceneDescription): CompiledScene {
  const lights = scene.lights.map((light) => {
    const out = new CompiledLight();
    out.directional = light.kind === 'directional';
    [out.x, out.y, out.z] = light.kind === 'directional' ? normalize(light.direction) : light.position;
    [out.red, out.green, out.blue] = light.color.map((channel) => channel * light.intensity);
    return out;
  });
  return {
    primitives: scene.primitives.map(compilePrimitive),
    lights,
    camera: cameraBasis(scene.camera),
    ambient: scene.ambient,
    skyZenith: scene.skyZenith,
    skyHorizon: scene.skyHorizon,
  };
}
