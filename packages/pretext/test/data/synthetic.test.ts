import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  renderClip,
  renderDescription,
  renderGrid,
  renderScene,
  syntheticStore,
  writeSyntheticGrid,
  type Camera,
  type Mat3,
  type Material,
  type Primitive,
  type SceneDescription,
  type SceneSample,
  type Vec3,
} from '../../src/data/synthetic/index.js';

// Independent geometry helpers (deliberately not imported from the renderer).

const sub = (a: Vec3, b: Vec3): Vec3 => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
const addScaled = (a: Vec3, b: Vec3, s: number): Vec3 => [a[0] + s * b[0], a[1] + s * b[1], a[2] + s * b[2]];
const dot = (a: Vec3, b: Vec3): number => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a: Vec3, b: Vec3): Vec3 => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const normalize = (a: Vec3): Vec3 => {
  const n = Math.sqrt(dot(a, a));
  return [a[0] / n, a[1] / n, a[2] / n];
};
/** Transpose(m) * v: world vector into the local frame of rotation m (row-major). */
const toLocal = (m: Mat3, v: Vec3): Vec3 => [
  m[0] * v[0] + m[3] * v[1] + m[6] * v[2],
  m[1] * v[0] + m[4] * v[1] + m[7] * v[2],
  m[2] * v[0] + m[5] * v[1] + m[8] * v[2],
];
const column = (m: Mat3, j: number): Vec3 => [m[j], m[3 + j], m[6 + j]];

interface PixelRay {
  origin: Vec3;
  direction: Vec3;
  forward: Vec3;
  right: Vec3;
  up: Vec3;
}

/** Documented convention: ray through the center of pixel (row i, col j), image plane at unit distance. */
function pixelRay(camera: Camera, size: number, i: number, j: number): PixelRay {
  const forward = normalize(sub(camera.target, camera.position));
  const right = normalize(cross(forward, camera.up));
  const up = cross(right, forward);
  const tanHalf = Math.tan((camera.fovDegrees / 2) * (Math.PI / 180));
  const sx = ((j + 0.5) / size) * 2 - 1;
  const sy = 1 - ((i + 0.5) / size) * 2;
  const direction = normalize(addScaled(addScaled(forward, right, sx * tanHalf), up, sy * tanHalf));
  return { origin: camera.position, direction, forward, right, up };
}

/** World normal into camera space (+x right, +y up, +z toward the viewer). */
function cameraNormal(ray: PixelRay, n: Vec3): Vec3 {
  return [dot(n, ray.right), dot(n, ray.up), -dot(n, ray.forward)];
}

/** Hit on a camera-facing box face, at least 1e-3 inside the face rectangle. */
function boxFaceHit(ray: PixelRay, center: Vec3, half: Vec3, rotation: Mat3): { t: number; normal: Vec3 } | undefined {
  for (let axis = 0; axis < 3; axis++) {
    for (const sign of [-1, 1]) {
      const normal = column(rotation, axis).map((v) => sign * v) as Vec3;
      const height = dot(normal, sub(ray.origin, center));
      if (height <= half[axis]) continue;
      const t = (half[axis] - height) / dot(normal, ray.direction);
      if (!(t > 0)) continue;
      const local = toLocal(rotation, sub(addScaled(ray.origin, ray.direction, t), center));
      if ([0, 1, 2].every((other) => other === axis || Math.abs(local[other]) < half[other] - 1e-3)) return { t, normal };
    }
  }
  return undefined;
}

function assertPixel(sample: SceneSample, k: number, depth: number, normal: Vec3, id: number, where: string): void {
  assert.equal(sample.instances[k], id, `instance at ${where}`);
  assert.equal(sample.mask[k], 1, `mask at ${where}`);
  assert.ok(Math.abs(sample.depth[k] - depth) < 1e-4, `depth at ${where}: ${sample.depth[k]} vs ${depth}`);
  for (let c = 0; c < 3; c++) {
    assert.ok(
      Math.abs(sample.normals[3 * k + c] - normal[c]) < 1e-4,
      `normal[${c}] at ${where}: ${sample.normals[3 * k + c]} vs ${normal[c]}`,
    );
  }
}

const plain = (color: Vec3): Material => ({ color });
const identity: Mat3 = [1, 0, 0, 0, 1, 0, 0, 0, 1];

function handMadeScene(primitives: Primitive[], camera: Camera): SceneDescription {
  return {
    primitives,
    lights: [{ kind: 'directional', direction: normalize([0.3, 1, 0.5]), color: [1, 1, 1], intensity: 1 }],
    camera,
    ambient: 0.2,
    skyZenith: [0.3, 0.5, 0.9],
    skyHorizon: [0.8, 0.85, 0.9],
  };
}

/** Recomputes contours from the instance map: a pixel differs from some in-image 4-neighbour. */
function expectedContours(instances: Int32Array, size: number): Uint8Array {
  const out = new Uint8Array(size * size);
  const offsets = [
    [0, 1],
    [0, -1],
    [1, 0],
    [-1, 0],
  ];
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      for (const [di, dj] of offsets) {
        const ni = i + di;
        const nj = j + dj;
        if (ni >= 0 && ni < size && nj >= 0 && nj < size && instances[ni * size + nj] !== instances[i * size + j]) out[i * size + j] = 1;
      }
    }
  }
  return out;
}

function meanAbsDifference(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let k = 0; k < a.length; k++) sum += Math.abs(a[k] - b[k]);
  return sum / a.length;
}

const bytesOf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

test('sphere depth and normals match the analytic ray-sphere hit at every pixel', () => {
  const camera: Camera = { position: [0.4, 1.5, 6], target: [0, 0.5, 0], up: [0, 1, 0], fovDegrees: 45, far: 50 };
  const center: Vec3 = [0.3, 0.7, -0.2];
  const radius = 1.2;
  const size = 32;
  const sphere: Primitive = {
    kind: 'sphere',
    id: 7,
    center,
    radius,
    rotation: identity,
    material: plain([0.8, 0.2, 0.2]),
  };
  const sample = renderDescription(handMadeScene([sphere], camera), size);
  let hits = 0;
  let misses = 0;
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      const k = i * size + j;
      const ray = pixelRay(camera, size, i, j);
      const oc = sub(ray.origin, center);
      const b = dot(oc, ray.direction);
      const disc = b * b - (dot(oc, oc) - radius * radius);
      if (Math.abs(disc) < 1e-6) continue;
      if (disc < 0) {
        misses++;
        assert.equal(sample.instances[k], 0);
        assert.equal(sample.mask[k], 0);
        assert.equal(sample.depth[k], camera.far);
        assert.deepEqual([...sample.normals.subarray(3 * k, 3 * k + 3)], [0, 0, 0]);
        continue;
      }
      hits++;
      const t = -b - Math.sqrt(disc);
      const point = addScaled(ray.origin, ray.direction, t);
      const normal = normalize(sub(point, center));
      assertPixel(sample, k, t * dot(ray.direction, ray.forward), cameraNormal(ray, normal), 7, `(${i}, ${j})`);
    }
  }
  assert.ok(hits > 100 && misses > 100, `hits ${hits}, misses ${misses}`);
});

test('rotated box faces, cylinder cap and ground plane depths match analytic hits', () => {
  const camera: Camera = { position: [0.5, 2.5, 6], target: [0, 0.4, 0], up: [0, 1, 0], fovDegrees: 50, far: 30 };
  const angle = Math.PI / 6;
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  const boxRotation: Mat3 = [c, 0, s, 0, 1, 0, -s, 0, c];
  const boxCenter: Vec3 = [-1.2, 0.6, 0];
  const half: Vec3 = [0.5, 0.6, 0.7];
  // Cylinder axis (local y) along world +z: its +y cap faces the camera.
  const cylinderRotation: Mat3 = [1, 0, 0, 0, 0, -1, 0, 1, 0];
  const cylinderCenter: Vec3 = [1.2, 0.5, 0];
  const cylinderRadius = 0.5;
  const halfHeight = 0.4;
  const primitives: Primitive[] = [
    { kind: 'plane', id: 1, normal: [0, 1, 0], offset: 0, material: plain([0.6, 0.6, 0.6]) },
    {
      kind: 'box',
      id: 2,
      center: boxCenter,
      halfExtents: half,
      rotation: boxRotation,
      material: plain([0.2, 0.7, 0.3]),
    },
    {
      kind: 'cylinder',
      id: 3,
      center: cylinderCenter,
      radius: cylinderRadius,
      halfHeight,
      rotation: cylinderRotation,
      material: plain([0.2, 0.3, 0.8]),
    },
  ];
  const size = 48;
  const sample = renderDescription(handMadeScene(primitives, camera), size);
  const counts = { box: 0, cap: 0, ground: 0 };
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      const k = i * size + j;
      const ray = pixelRay(camera, size, i, j);
      const cosView = dot(ray.direction, ray.forward);
      // Box: a camera-facing face hit strictly inside its rectangle is the entry point of a convex box.
      const boxHit = boxFaceHit(ray, boxCenter, half, boxRotation);
      if (boxHit) {
        counts.box++;
        assertPixel(sample, k, boxHit.t * cosView, cameraNormal(ray, boxHit.normal), 2, `box (${i}, ${j})`);
        continue;
      }
      // Cylinder cap at local y = halfHeight (world z = halfHeight).
      const capNormal = column(cylinderRotation, 1);
      const tCap = (dot(capNormal, sub(cylinderCenter, ray.origin)) + halfHeight) / dot(capNormal, ray.direction);
      const capLocal = toLocal(cylinderRotation, sub(addScaled(ray.origin, ray.direction, tCap), cylinderCenter));
      if (Math.hypot(capLocal[0], capLocal[2]) < cylinderRadius - 1e-3) {
        counts.cap++;
        assertPixel(sample, k, tCap * cosView, cameraNormal(ray, capNormal), 3, `cap (${i}, ${j})`);
        continue;
      }
      // Ground: only where the pixel's 3x3 neighbourhood is ground, away from object silhouettes.
      const tGround = -ray.origin[1] / ray.direction[1];
      const neighbourhoodIsGround = [-1, 0, 1].every((di) =>
        [-1, 0, 1].every(
          (dj) => sample.instances[Math.min(size - 1, Math.max(0, i + di)) * size + Math.min(size - 1, Math.max(0, j + dj))] === 1,
        ),
      );
      if (tGround > 0 && tGround * cosView < camera.far * 0.99 && neighbourhoodIsGround) {
        counts.ground++;
        assertPixel(sample, k, tGround * cosView, cameraNormal(ray, [0, 1, 0]), 1, `ground (${i}, ${j})`);
      }
    }
  }
  assert.ok(counts.box > 30 && counts.cap > 10 && counts.ground > 500, JSON.stringify(counts));
});

test('normals are unit length, face the camera on objects and are zero on background; depth is positive and within far', () => {
  for (let seed = 0; seed < 6; seed++) {
    const sample = renderScene(seed, { size: 40 });
    const far = sample.scene.camera.far;
    for (let k = 0; k < sample.size * sample.size; k++) {
      const [x, y, z] = sample.normals.subarray(3 * k, 3 * k + 3);
      if (sample.mask[k]) {
        assert.ok(Math.abs(Math.hypot(x, y, z) - 1) < 1e-5, `seed ${seed} pixel ${k}: |n| = ${Math.hypot(x, y, z)}`);
        // Camera-space ray direction is (sx tan, sy tan, -1); visible surfaces face against it.
        const i = Math.floor(k / sample.size);
        const j = k % sample.size;
        const tanHalf = Math.tan((sample.scene.camera.fovDegrees / 2) * (Math.PI / 180));
        const sx = ((j + 0.5) / sample.size) * 2 - 1;
        const sy = 1 - ((i + 0.5) / sample.size) * 2;
        assert.ok(x * sx * tanHalf + y * sy * tanHalf - z < 1e-9, `seed ${seed} pixel ${k}: normal faces away`);
        assert.ok(sample.depth[k] > 0 && sample.depth[k] <= far, `seed ${seed} pixel ${k}: depth ${sample.depth[k]}`);
        assert.notEqual(sample.instances[k], 0);
      } else {
        assert.deepEqual([x, y, z], [0, 0, 0]);
        assert.equal(sample.depth[k], far);
        assert.equal(sample.instances[k], 0);
      }
    }
  }
});

test('contours lie exactly at instance boundaries', () => {
  for (let seed = 0; seed < 6; seed++) {
    const sample = renderScene(seed, { size: 48 });
    assert.deepEqual(sample.contours, expectedContours(sample.instances, sample.size), `seed ${seed}`);
    assert.ok(
      sample.contours.some((v) => v === 1),
      `seed ${seed} has contours`,
    );
  }
});

test('instance ids cover the visible primitives', () => {
  const camera: Camera = { position: [0, 3, 7], target: [0, 0.5, 0], up: [0, 1, 0], fovDegrees: 50, far: 40 };
  const primitives: Primitive[] = [
    { kind: 'plane', id: 1, normal: [0, 1, 0], offset: 0, material: plain([0.5, 0.5, 0.5]) },
    { kind: 'sphere', id: 2, center: [-1.5, 0.5, 0], radius: 0.5, rotation: identity, material: plain([1, 0, 0]) },
    {
      kind: 'box',
      id: 3,
      center: [0, 0.5, 0],
      halfExtents: [0.5, 0.5, 0.5],
      rotation: identity,
      material: plain([0, 1, 0]),
    },
    {
      kind: 'cylinder',
      id: 4,
      center: [1.5, 0.5, 0],
      radius: 0.4,
      halfHeight: 0.5,
      rotation: identity,
      material: plain([0, 0, 1]),
    },
  ];
  const sample = renderDescription(handMadeScene(primitives, camera), 32);
  assert.deepEqual(new Set(sample.instances), new Set([0, 1, 2, 3, 4]));

  let objects = 0;
  let visibleObjects = 0;
  for (let seed = 0; seed < 20; seed++) {
    const random = renderScene(seed, { size: 48 });
    const ids = new Set(random.instances);
    const sceneIds = new Set([0, ...random.scene.primitives.map((p) => p.id)]);
    for (const id of ids) assert.ok(sceneIds.has(id), `seed ${seed}: unknown id ${id}`);
    assert.ok(ids.has(1), `seed ${seed}: ground visible`);
    const objectIds = random.scene.primitives.filter((p) => p.kind !== 'plane').map((p) => p.id);
    assert.equal(new Set(objectIds).size, objectIds.length, `seed ${seed}: ids are unique`);
    objects += objectIds.length;
    visibleObjects += objectIds.filter((id) => ids.has(id)).length;
  }
  assert.ok(visibleObjects >= 0.9 * objects, `${visibleObjects} of ${objects} objects visible`);
});

test('same seed gives identical bytes, different seeds differ', () => {
  const a = renderScene(11, { size: 32 });
  const b = renderScene(11, { size: 32 });
  const c = renderScene(12, { size: 32 });
  for (const key of ['rgb', 'depth', 'normals', 'instances', 'contours', 'mask'] as const) {
    assert.ok(bytesOf(a[key]).equals(bytesOf(b[key])), `${key} identical`);
  }
  assert.deepEqual(a.scene, b.scene);
  assert.ok(!bytesOf(a.rgb).equals(bytesOf(c.rgb)));
  assert.ok(!bytesOf(a.depth).equals(bytesOf(c.depth)));
});

test('supersampling changes RGB only; maps stay at pixel centers', () => {
  const single = renderScene(3, { size: 24 });
  const multi = renderScene(3, { size: 24, supersample: 3 });
  for (const key of ['depth', 'normals', 'instances', 'contours', 'mask'] as const) {
    assert.ok(bytesOf(single[key]).equals(bytesOf(multi[key])), `${key} unchanged`);
  }
  assert.ok(!bytesOf(single.rgb).equals(bytesOf(multi.rgb)));
});

test('clip frames change smoothly in time order', () => {
  for (const seed of [1, 2, 3]) {
    const frames = renderClip(seed, { size: 32, frames: 10 });
    assert.equal(frames.length, 10);
    const steps = frames.slice(1).map((frame, k) => meanAbsDifference(frames[k].rgb, frame.rgb));
    const meanStep = steps.reduce((x, y) => x + y, 0) / steps.length;
    const span = meanAbsDifference(frames[0].rgb, frames[frames.length - 1].rgb);
    assert.ok(meanStep > 0, `seed ${seed}: frames move`);
    assert.ok(meanStep < span / 2, `seed ${seed}: step ${meanStep} vs span ${span}`);
    for (const frame of frames) assert.deepEqual(frame.contours, expectedContours(frame.instances, frame.size));
  }
});

test('syntheticStore matches renderScene and has SampleStore fields', () => {
  const store = syntheticStore(3, 16, 40);
  assert.equal(store.n, 3);
  assert.equal(store.height, 16);
  assert.equal(store.width, 16);
  assert.equal(store.channels, 3);
  assert.equal(store.images.length, 3 * 16 * 16 * 3);
  assert.deepEqual([...store.labels], [-1, -1, -1]);
  assert.deepEqual(store.classNames, []);
  assert.deepEqual(store.paths, ['synthetic/40', 'synthetic/41', 'synthetic/42']);
  const second = renderScene(41, { size: 16 }).rgb;
  assert.ok(bytesOf(store.images.subarray(16 * 16 * 3, 2 * 16 * 16 * 3)).equals(bytesOf(second)));
});

test('grid layout and PNG output', async () => {
  const samples = [renderScene(0, { size: 20 }), renderScene(1, { size: 20 })];
  const grid = renderGrid(samples);
  assert.equal(grid.rgb.length, grid.width * grid.height * 3);
  assert.ok(grid.width >= 4 * 20 && grid.height >= 2 * 20);
  const dir = mkdtempSync(join(tmpdir(), 'synthetic-grid-'));
  try {
    const path = join(dir, 'grid.png');
    await writeSyntheticGrid(path, 2, 20, 0);
    assert.deepEqual([...readFileSync(path).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
