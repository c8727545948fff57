// Short clips: objects slide across the ground and spin (spheres roll) smoothly over a known frame order.

import { add, axisAngleMat3, cross, length, mulMat3, normalize, scale, type Mat3, type Vec3 } from './math.js';
import { renderDescription, type RenderOptions, type SceneSample } from './render.js';
import { Rng } from '../../util/random.js';
import { sampleScene } from './sample.js';
import type { Primitive, SceneDescription } from './scene.js';

/** Motion of one object over the whole clip (normalized time 0..1). */
export interface ObjectMotion {
  id: number;
  /** Total translation over the clip. */
  displacement: Vec3;
  /** World axis of the rotation about the object's center. */
  spinAxis: Vec3;
  /** Total rotation angle over the clip, radians. */
  spinAngle: number;
}

export interface ClipDescription {
  /** The scene at time 0; the camera, lights and ground stay fixed. */
  scene: SceneDescription;
  motions: ObjectMotion[];
}

export interface ClipOptions extends RenderOptions {
  size: number;
  frames: number;
}

function sampleMotion(rng: Rng, primitive: Primitive): ObjectMotion | undefined {
  if (primitive.kind === 'plane') return undefined;
  const heading = rng.range(0, 2 * Math.PI);
  const displacement: Vec3 = scale([Math.cos(heading), 0, Math.sin(heading)], rng.range(0.3, 1));
  if (primitive.kind === 'sphere') {
    // Roll without slipping.
    const spinAxis = normalize(cross([0, 1, 0], displacement));
    return { id: primitive.id, displacement, spinAxis, spinAngle: length(displacement) / primitive.radius };
  }
  const spinAngle = rng.range(0.6, 2) * (rng.chance(0.5) ? 1 : -1);
  return { id: primitive.id, displacement, spinAxis: [0, 1, 0], spinAngle };
}

/** A random scene (as `sampleScene`) plus a smooth motion for every object. */
export function sampleClip(rng: Rng): ClipDescription {
  const scene = sampleScene(rng);
  const motions = scene.primitives.map((p) => sampleMotion(rng, p)).filter((m): m is ObjectMotion => m !== undefined);
  return { scene, motions };
}

function movedPrimitive(primitive: Primitive, motion: ObjectMotion | undefined, time: number): Primitive {
  if (primitive.kind === 'plane' || !motion) return primitive;
  const turn = axisAngleMat3(motion.spinAxis, motion.spinAngle * time);
  const rotation: Mat3 = mulMat3(turn, primitive.rotation);
  return { ...primitive, center: add(primitive.center, scale(motion.displacement, time)), rotation };
}

/** The clip's scene at normalized time `time` (0 = first frame, 1 = last frame). */
export function sceneAtTime(clip: ClipDescription, time: number): SceneDescription {
  const motionById = new Map(clip.motions.map((m) => [m.id, m]));
  const primitives = clip.scene.primitives.map((p) => movedPrimitive(p, motionById.get(p.id), time));
  return { ...clip.scene, primitives };
}

/** Renders `frames` frames of the clip for `seed`, in temporal order (frame k at time k / (frames - 1)). */
export function renderClip(seed: number, options: ClipOptions): SceneSample[] {
  const clip = sampleClip(new Rng(seed));
  const frames: SceneSample[] = [];
  for (let k = 0; k < options.frames; k++) {
    const time = options.frames > 1 ? k / (options.frames - 1) : 0;
    frames.push(renderDescription(sceneAtTime(clip, time), options.size, options));
  }
  return frames;
}
