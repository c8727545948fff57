// Random scene sampler: textured primitives resting on a ground plane, 1-2 lights, a camera framing them.

import { add, axisAngleMat3, column, length, normalize, scale, sub, type Mat3, type Vec3 } from './math.js';
import type { Rng } from '../../util/random.js';
import type { Light, Material, Primitive, SceneDescription, Texture, TextureKind } from './scene.js';

export const GROUND_ID = 1;
/** Ids of sampled objects start here (ground is GROUND_ID, background 0). */
export const FIRST_OBJECT_ID = 2;

const FAR = 40;

function hsvToRgb(hue: number, saturation: number, value: number): Vec3 {
  const channel = (n: number): number => {
    const k = (n + hue * 6) % 6;
    return value - value * saturation * Math.max(0, Math.min(k, 4 - k, 1));
  };
  return [channel(5), channel(3), channel(1)];
}

function randomColor(rng: Rng, saturation: [number, number], value: [number, number]): Vec3 {
  return hsvToRgb(rng.next(), rng.range(...saturation), rng.range(...value));
}

function randomUnitVector(rng: Rng): Vec3 {
  return normalize([rng.normal(), rng.normal(), rng.normal()]);
}

/** Uniformly random rotation (from a random unit quaternion). */
export function randomRotation(rng: Rng): Mat3 {
  const q = [rng.normal(), rng.normal(), rng.normal(), rng.normal()];
  const n = Math.hypot(q[0], q[1], q[2], q[3]);
  const [w, x, y, z] = q.map((v) => v / n);
  // prettier-ignore
  return [
    1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
    2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
    2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
  ];
}

function randomTexture(rng: Rng, kind: TextureKind, base: Vec3, scaleRange: [number, number]): Texture {
  const contrast = rng.range(0.35, 0.8);
  const color2 = rng.chance(0.5) ? randomColor(rng, [0.2, 0.9], [0.3, 0.95]) : scale(base, 1 - contrast);
  return {
    kind,
    color2,
    scale: rng.range(...scaleRange),
    axis: randomUnitVector(rng),
    offset: [rng.next(), rng.next(), rng.next()],
  };
}

function randomObjectMaterial(rng: Rng): Material {
  const color = randomColor(rng, [0.3, 0.9], [0.45, 0.95]);
  const kind = rng.pick<TextureKind>(['solid', 'solid', 'checker', 'stripes', 'marble']);
  return {
    color,
    texture: kind === 'solid' ? undefined : randomTexture(rng, kind, color, [1.5, 4]),
    specular: rng.chance(0.6) ? rng.range(0.15, 0.6) : 0,
    shininess: rng.range(12, 80),
  };
}

function groundMaterial(rng: Rng): Material {
  const color = randomColor(rng, [0, 0.4], [0.45, 0.9]);
  const kind = rng.pick<TextureKind>(['checker', 'checker', 'marble', 'stripes', 'solid']);
  return { color, texture: kind === 'solid' ? undefined : randomTexture(rng, kind, color, [0.4, 1.2]) };
}

/** Rotation tilted only about the vertical axis, or a fully random one. */
function randomPose(rng: Rng): Mat3 {
  return rng.chance(0.6) ? axisAngleMat3([0, 1, 0], rng.range(0, 2 * Math.PI)) : randomRotation(rng);
}

/** An object centered at the origin with its lowest point height `-lowest`, and its bounding radius. */
interface Shape {
  primitive: Primitive;
  lowest: number;
  boundRadius: number;
}

function randomShape(rng: Rng, id: number): Shape {
  const material = randomObjectMaterial(rng);
  const kind = rng.pick(['sphere', 'box', 'cylinder'] as const);
  const origin: Vec3 = [0, 0, 0];
  if (kind === 'sphere') {
    const radius = rng.range(0.35, 0.9);
    const primitive: Primitive = { kind, id, center: origin, radius, rotation: randomRotation(rng), material };
    return { primitive, lowest: radius, boundRadius: radius };
  }
  const rotation = randomPose(rng);
  if (kind === 'box') {
    const halfExtents: Vec3 = [rng.range(0.25, 0.8), rng.range(0.25, 0.8), rng.range(0.25, 0.8)];
    // Support of the box in the -y direction.
    const lowest = Math.abs(rotation[3]) * halfExtents[0] + Math.abs(rotation[4]) * halfExtents[1] + Math.abs(rotation[5]) * halfExtents[2];
    return {
      primitive: { kind, id, center: origin, halfExtents, rotation, material },
      lowest,
      boundRadius: length(halfExtents),
    };
  }
  const radius = rng.range(0.25, 0.6);
  const halfHeight = rng.range(0.25, 0.8);
  const axisUp = Math.abs(column(rotation, 1)[1]);
  const lowest = axisUp * halfHeight + Math.sqrt(Math.max(0, 1 - axisUp * axisUp)) * radius;
  const primitive: Primitive = { kind, id, center: origin, radius, halfHeight, rotation, material };
  return { primitive, lowest, boundRadius: Math.hypot(radius, halfHeight) };
}

function setCenter(primitive: Primitive, center: Vec3): void {
  if (primitive.kind !== 'plane') primitive.center = center;
}

function centerOf(primitive: Primitive): Vec3 {
  return primitive.kind === 'plane' ? scale(primitive.normal, primitive.offset) : primitive.center;
}

/** Places up to `count` non-overlapping objects resting on (or hovering just above) the ground. */
function placeObjects(rng: Rng, count: number): { primitives: Primitive[]; boundRadii: number[] } {
  const primitives: Primitive[] = [];
  const boundRadii: number[] = [];
  const spread = 0.6 + 0.45 * count;
  for (let k = 0; k < count; k++) {
    const shape = randomShape(rng, FIRST_OBJECT_ID + primitives.length);
    for (let attempt = 0; attempt < 20; attempt++) {
      const lift = rng.chance(0.15) ? rng.range(0.2, 1) : 0;
      const center: Vec3 = [rng.range(-spread, spread), shape.lowest + lift, rng.range(-spread, spread)];
      const overlaps = primitives.some(
        (other, index) => length(sub(centerOf(other), center)) < boundRadii[index] + shape.boundRadius + 0.05,
      );
      if (!overlaps) {
        setCenter(shape.primitive, center);
        primitives.push(shape.primitive);
        boundRadii.push(shape.boundRadius);
        break;
      }
    }
  }
  return { primitives, boundRadii };
}

function randomLights(rng: Rng, focus: Vec3): Light[] {
  const elevation = rng.range(0.45, 1.3);
  const azimuth = rng.range(0, 2 * Math.PI);
  const toLight: Vec3 = [Math.cos(elevation) * Math.sin(azimuth), Math.sin(elevation), Math.cos(elevation) * Math.cos(azimuth)];
  const warm: Vec3 = hsvToRgb(rng.range(0.05, 0.15), rng.range(0, 0.25), 1);
  const lights: Light[] = [];
  if (rng.chance(0.75)) {
    lights.push({ kind: 'directional', direction: toLight, color: warm, intensity: rng.range(0.8, 1.1) });
  } else {
    const position = add(focus, scale(toLight, rng.range(4, 7)));
    lights.push({ kind: 'point', position, color: warm, intensity: rng.range(0.9, 1.2) });
  }
  if (rng.chance(0.4)) {
    const fillAzimuth = azimuth + rng.range(1.5, 4.8);
    const position = add(focus, [3.5 * Math.sin(fillAzimuth), rng.range(1.5, 4), 3.5 * Math.cos(fillAzimuth)]);
    lights.push({
      kind: 'point',
      position,
      color: hsvToRgb(rng.next(), rng.range(0, 0.5), 1),
      intensity: rng.range(0.2, 0.45),
    });
  }
  return lights;
}

/** Builds a random scene: ground plane (id 1), 2-5 objects (ids 2..), lights and a camera framing all objects. */
export function sampleScene(rng: Rng): SceneDescription {
  const ground: Primitive = {
    kind: 'plane',
    id: GROUND_ID,
    normal: [0, 1, 0],
    offset: 0,
    material: groundMaterial(rng),
  };
  const { primitives, boundRadii } = placeObjects(rng, rng.int(2, 5));
  const centers = primitives.map(centerOf);
  const mean = scale(centers.reduce(add, [0, 0, 0] as Vec3), 1 / centers.length);
  const target: Vec3 = [mean[0], 0.6 * mean[1], mean[2]];
  const sceneRadius = Math.max(...centers.map((c, k) => length(sub(c, target)) + boundRadii[k]));

  // At distance factor >= 1 the scene's bounding sphere fits the view cone; a bit less frames tighter.
  const fovDegrees = rng.range(35, 60);
  const distance = (sceneRadius / Math.sin((fovDegrees * Math.PI) / 360)) * rng.range(0.85, 1.15);
  const elevation = rng.range(0.2, 0.9);
  const azimuth = rng.range(0, 2 * Math.PI);
  const position = add(
    target,
    scale([Math.cos(elevation) * Math.sin(azimuth), Math.sin(elevation), Math.cos(elevation) * Math.cos(azimuth)], distance),
  );

  const skyZenith = hsvToRgb(rng.range(0.53, 0.66), rng.range(0.3, 0.7), rng.range(0.55, 0.9));
  const skyHorizon = add(scale(skyZenith, 0.35), [0.6, 0.6, 0.6]).map((c) => Math.min(1, c)) as Vec3;
  return {
    primitives: [ground, ...primitives],
    lights: randomLights(rng, target),
    camera: { position, target, up: [0, 1, 0], fovDegrees, far: FAR },
    ambient: rng.range(0.15, 0.3),
    skyZenith,
    skyHorizon,
  };
}
