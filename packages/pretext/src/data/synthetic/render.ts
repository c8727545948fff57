// Per-pixel ray casting: shaded RGB plus exact depth, normal, instance and contour maps.

import { compileScene, PLANE, type CompiledScene } from './compile.js';
import { Hit, occluded, surfaceFrame, traceNearest } from './intersect.js';
import { Rng } from '../../util/random.js';
import { sampleScene } from './sample.js';
import type { SceneDescription } from './scene.js';
import { albedo } from './texture.js';

/**
 * One rendered image and its exact per-pixel maps, all row-major with `size` rows and columns.
 * Maps are evaluated at pixel centers only; supersampling affects `rgb` alone.
 */
export interface SceneSample {
  size: number;
  /** sRGB bytes, HWC. */
  rgb: Uint8Array;
  /**
   * Z-depth: distance of the hit along the camera's view axis (not the ray length).
   * Background pixels hold `scene.camera.far`.
   */
  depth: Float32Array;
  /** Unit surface normals in camera space (+x right, +y up, +z toward the viewer), HWC; background is 0. */
  normals: Float32Array;
  /** Primitive id per pixel; 0 is background. */
  instances: Int32Array;
  /** 1 where a 4-neighbour (inside the image) has a different instance id, else 0. */
  contours: Uint8Array;
  /** 1 where a primitive was hit (instances !== 0), else 0. */
  mask: Uint8Array;
  scene: SceneDescription;
}

export interface RenderOptions {
  /** RGB anti-aliasing: supersample x supersample rays per pixel (default 1). */
  supersample?: number;
}

/** Offset of shadow-ray origins along the normal, in scene units. */
const SHADOW_BIAS = 1e-5;
const INVERSE_GAMMA = 1 / 2.2;

/** Marks pixels whose instance id differs from any 4-neighbour inside the image. */
export function instanceContours(instances: Int32Array, size: number): Uint8Array {
  const contours = new Uint8Array(size * size);
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      const k = i * size + j;
      const id = instances[k];
      const differs =
        (j > 0 && instances[k - 1] !== id) ||
        (j < size - 1 && instances[k + 1] !== id) ||
        (i > 0 && instances[k - size] !== id) ||
        (i < size - 1 && instances[k + size] !== id);
      contours[k] = differs ? 1 : 0;
    }
  }
  return contours;
}

function encodeChannel(linear: number): number {
  const clamped = linear <= 0 ? 0 : linear >= 1 ? 1 : linear;
  return Math.round(255 * Math.pow(clamped, INVERSE_GAMMA));
}

/** Ray generation and shading state for one compiled scene; scratch buffers are reused for every ray. */
class Tracer {
  readonly hit = new Hit();
  /** Ray direction of the last `aim` call. */
  dx = 0;
  dy = 0;
  dz = 0;
  /** Linear RGB of the last `shade` / `sky` call. */
  readonly color = new Float64Array(3);
  /** World normal (0..2) and local coordinates (3..5) of the shaded point. */
  readonly frame = new Float64Array(6);
  private readonly surface = new Float64Array(3);
  /** Camera position, the origin of every primary ray. */
  private readonly ox: number;
  private readonly oy: number;
  private readonly oz: number;

  constructor(readonly scene: CompiledScene) {
    [this.ox, this.oy, this.oz] = scene.camera.position;
  }

  /** Aims through image-plane coordinates sx, sy in [-1, 1] (x right, y up); returns dir . forward. */
  aim(sx: number, sy: number): number {
    const { forward, right, up, tanHalfFov } = this.scene.camera;
    const x = sx * tanHalfFov;
    const y = sy * tanHalfFov;
    const dx = forward[0] + x * right[0] + y * up[0];
    const dy = forward[1] + x * right[1] + y * up[1];
    const dz = forward[2] + x * right[2] + y * up[2];
    const inverseLength = 1 / Math.sqrt(dx * dx + dy * dy + dz * dz);
    this.dx = dx * inverseLength;
    this.dy = dy * inverseLength;
    this.dz = dz * inverseLength;
    return inverseLength;
  }

  /** Traces the aimed ray up to the far plane; `cosView` is dir . forward. */
  trace(cosView: number): boolean {
    return traceNearest(
      this.scene.primitives,
      this.ox,
      this.oy,
      this.oz,
      this.dx,
      this.dy,
      this.dz,
      this.scene.camera.far / cosView,
      this.hit,
    );
  }

  /** Fills `frame` for the current hit; the normal faces the ray for planes (double-sided). */
  surfaceAtHit(): void {
    const t = this.hit.t;
    const primitive = this.scene.primitives[this.hit.index];
    const frame = this.frame;
    surfaceFrame(primitive, this.hit.face, this.ox + t * this.dx, this.oy + t * this.dy, this.oz + t * this.dz, frame);
    if (primitive.kind === PLANE && frame[0] * this.dx + frame[1] * this.dy + frame[2] * this.dz > 0) {
      frame[0] = -frame[0];
      frame[1] = -frame[1];
      frame[2] = -frame[2];
    }
  }

  /** Sky gradient for the aimed direction. */
  sky(): void {
    const { skyZenith, skyHorizon } = this.scene;
    const height = this.dy > 0 ? Math.sqrt(this.dy) : 0;
    for (let c = 0; c < 3; c++) this.color[c] = skyHorizon[c] + (skyZenith[c] - skyHorizon[c]) * height;
  }

  /** Shades the current hit (after `surfaceAtHit`): ambient + Lambert + Blinn-Phong with hard shadows, then fog. */
  shade(cosView: number): void {
    const scene = this.scene;
    const primitive = scene.primitives[this.hit.index];
    const frame = this.frame;
    const nx = frame[0];
    const ny = frame[1];
    const nz = frame[2];
    const t = this.hit.t;
    const px = this.ox + t * this.dx + SHADOW_BIAS * nx;
    const py = this.oy + t * this.dy + SHADOW_BIAS * ny;
    const pz = this.oz + t * this.dz + SHADOW_BIAS * nz;
    const surface = this.surface;
    albedo(primitive, frame[3], frame[4], frame[5], surface);

    const ambient = scene.ambient * (0.75 + 0.25 * ny);
    let diffuseR = ambient;
    let diffuseG = ambient;
    let diffuseB = ambient;
    let specularR = 0;
    let specularG = 0;
    let specularB = 0;
    for (const light of scene.lights) {
      let lx = light.x;
      let ly = light.y;
      let lz = light.z;
      let distance = Infinity;
      if (!light.directional) {
        lx -= px;
        ly -= py;
        lz -= pz;
        distance = Math.sqrt(lx * lx + ly * ly + lz * lz);
        lx /= distance;
        ly /= distance;
        lz /= distance;
      }
      const lambert = nx * lx + ny * ly + nz * lz;
      if (lambert <= 0 || occluded(scene.primitives, px, py, pz, lx, ly, lz, distance)) continue;
      diffuseR += lambert * light.red;
      diffuseG += lambert * light.green;
      diffuseB += lambert * light.blue;
      if (primitive.specular > 0) {
        const hx = lx - this.dx;
        const hy = ly - this.dy;
        const hz = lz - this.dz;
        const cosHalf = (nx * hx + ny * hy + nz * hz) / Math.sqrt(hx * hx + hy * hy + hz * hz);
        if (cosHalf > 0) {
          const highlight = primitive.specular * Math.pow(cosHalf, primitive.shininess);
          specularR += highlight * light.red;
          specularG += highlight * light.green;
          specularB += highlight * light.blue;
        }
      }
    }
    const litR = surface[0] * diffuseR + specularR;
    const litG = surface[1] * diffuseG + specularG;
    const litB = surface[2] * diffuseB + specularB;
    // Fog toward the sky reaches 1 at the far plane, hiding the cut-off.
    const depthRatio = (t * cosView) / scene.camera.far;
    const fog = depthRatio * depthRatio;
    this.sky();
    const color = this.color;
    color[0] = litR + (color[0] - litR) * fog;
    color[1] = litG + (color[1] - litG) * fog;
    color[2] = litB + (color[2] - litB) * fog;
  }

  /** Linear color of the aimed ray: shaded surface or sky. */
  radiance(cosView: number): void {
    if (this.trace(cosView)) {
      this.surfaceAtHit();
      this.shade(cosView);
    } else {
      this.sky();
    }
  }
}

/** Renders `scene` into a size x size sample. */
export function renderDescription(scene: SceneDescription, size: number, options: RenderOptions = {}): SceneSample {
  const supersample = Math.max(1, Math.floor(options.supersample ?? 1));
  const pixels = size * size;
  const rgb = new Uint8Array(pixels * 3);
  const depth = new Float32Array(pixels);
  const normals = new Float32Array(pixels * 3);
  const instances = new Int32Array(pixels);
  const mask = new Uint8Array(pixels);
  const tracer = new Tracer(compileScene(scene));
  const { forward, right, up, far } = tracer.scene.camera;
  const color = tracer.color;
  const frame = tracer.frame;
  const subPixel = 1 / supersample;
  const subSamples = supersample * supersample;

  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      const k = i * size + j;
      const cosView = tracer.aim((2 * (j + 0.5)) / size - 1, 1 - (2 * (i + 0.5)) / size);
      if (tracer.trace(cosView)) {
        tracer.surfaceAtHit();
        const hit = tracer.hit;
        depth[k] = hit.t * cosView;
        instances[k] = tracer.scene.primitives[hit.index].id;
        mask[k] = 1;
        const nx = frame[0];
        const ny = frame[1];
        const nz = frame[2];
        normals[3 * k] = nx * right[0] + ny * right[1] + nz * right[2];
        normals[3 * k + 1] = nx * up[0] + ny * up[1] + nz * up[2];
        normals[3 * k + 2] = -(nx * forward[0] + ny * forward[1] + nz * forward[2]);
        if (supersample === 1) tracer.shade(cosView);
      } else {
        depth[k] = far;
        if (supersample === 1) tracer.sky();
      }
      if (supersample > 1) {
        let sumR = 0;
        let sumG = 0;
        let sumB = 0;
        for (let a = 0; a < supersample; a++) {
          for (let b = 0; b < supersample; b++) {
            const subCos = tracer.aim((2 * (j + (b + 0.5) * subPixel)) / size - 1, 1 - (2 * (i + (a + 0.5) * subPixel)) / size);
            tracer.radiance(subCos);
            sumR += color[0];
            sumG += color[1];
            sumB += color[2];
          }
        }
        color[0] = sumR / subSamples;
        color[1] = sumG / subSamples;
        color[2] = sumB / subSamples;
      }
      rgb[3 * k] = encodeChannel(color[0]);
      rgb[3 * k + 1] = encodeChannel(color[1]);
      rgb[3 * k + 2] = encodeChannel(color[2]);
    }
  }
  return { size, rgb, depth, normals, instances, contours: instanceContours(instances, size), mask, scene };
}

/** Samples the scene for `seed` and renders it; the same seed gives byte-identical output. */
export function renderScene(seed: number, options: { size: number } & RenderOptions): SceneSample {
  return renderDescription(sampleScene(new Rng(seed)), options.size, options);
}
