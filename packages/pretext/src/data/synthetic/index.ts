// Procedural 3D scenes with exact depth, normal, instance and contour maps.

export { Rng } from '../../util/random.js';
export type { Mat3, Vec3 } from './math.js';
export type {
  Box,
  Camera,
  Cylinder,
  DirectionalLight,
  Light,
  Material,
  Plane,
  PointLight,
  Primitive,
  SceneDescription,
  Sphere,
  Texture,
  TextureKind,
} from './scene.js';
export { FIRST_OBJECT_ID, GROUND_ID, randomRotation, sampleScene } from './sample.js';
export { instanceContours, renderDescription, renderScene, type RenderOptions, type SceneSample } from './render.js';
export { renderClip, sampleClip, sceneAtTime, type ClipDescription, type ClipOptions, type ObjectMotion } from './clip.js';
export { syntheticStore, type SyntheticStore } from './store.js';
export { renderGrid, writeSyntheticGrid, type GridImage } from './grid.js';
