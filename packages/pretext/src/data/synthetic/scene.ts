// Plain-data description of a synthetic scene: enough to re-render it or recompute its geometry.
//
// Conventions: world space is right-handed with +y up; the ground plane is y = 0 in sampled scenes.
// Camera space follows OpenGL: +x right, +y up, +z pointing back toward the viewer, so the camera
// looks along -z and surfaces facing the camera have a positive z normal component.

import type { Mat3, Vec3 } from './math.js';

export type TextureKind = 'solid' | 'checker' | 'stripes' | 'marble';

/** Procedural solid texture evaluated in the primitive's local frame (so it moves with the object). */
export interface Texture {
  kind: TextureKind;
  /** Second color mixed in by the pattern (ignored by 'solid'). */
  color2: Vec3;
  /** Pattern frequency in cycles per scene unit. */
  scale: number;
  /** Stripe / vein direction in the local frame (unit length). */
  axis: Vec3;
  /** Shift of the local texture coordinates, decorrelating identical patterns. */
  offset: Vec3;
}

export interface Material {
  /** Linear RGB albedo in [0, 1]. */
  color: Vec3;
  /** Defaults to a solid `color`. */
  texture?: Texture;
  /** Blinn-Phong specular weight in [0, 1]; defaults to 0. */
  specular?: number;
  /** Blinn-Phong exponent; defaults to 32. */
  shininess?: number;
}

interface PrimitiveBase {
  /** Instance id written to the instance map; must be > 0 (0 is the background). */
  id: number;
  material: Material;
}

export interface Sphere extends PrimitiveBase {
  kind: 'sphere';
  center: Vec3;
  radius: number;
  /** Orients the texture only. */
  rotation: Mat3;
}

/** Oriented box: world = rotation * local + center, with local coordinates in [-halfExtents, halfExtents]. */
export interface Box extends PrimitiveBase {
  kind: 'box';
  center: Vec3;
  halfExtents: Vec3;
  rotation: Mat3;
}

/** Capped cylinder around its local y axis (rotation column 1), local y in [-halfHeight, halfHeight]. */
export interface Cylinder extends PrimitiveBase {
  kind: 'cylinder';
  center: Vec3;
  radius: number;
  halfHeight: number;
  rotation: Mat3;
}

/** Infinite plane of points p with dot(normal, p) = offset; `normal` is unit length. */
export interface Plane extends PrimitiveBase {
  kind: 'plane';
  normal: Vec3;
  offset: number;
}

export type Primitive = Sphere | Box | Cylinder | Plane;

export interface DirectionalLight {
  kind: 'directional';
  /** Unit vector from the scene toward the light. */
  direction: Vec3;
  color: Vec3;
  intensity: number;
}

/** Point light without distance falloff. */
export interface PointLight {
  kind: 'point';
  position: Vec3;
  color: Vec3;
  intensity: number;
}

export type Light = DirectionalLight | PointLight;

/** Pinhole camera; images are square, so the field of view is both vertical and horizontal. */
export interface Camera {
  position: Vec3;
  target: Vec3;
  /** Approximate up direction; the exact up axis is re-orthogonalized against the view axis. */
  up: Vec3;
  fovDegrees: number;
  /** Hits deeper than `far` (along the view axis) count as background; background depth equals `far`. */
  far: number;
}

export interface SceneDescription {
  primitives: Primitive[];
  lights: Light[];
  camera: Camera;
  /** Strength of the hemispherical ambient term. */
  ambient: number;
  /** Sky color straight up and at the horizon (linear RGB); the background and fog color. */
  skyZenith: Vec3;
  skyHorizon: Vec3;
}
