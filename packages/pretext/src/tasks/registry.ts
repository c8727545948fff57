// Every pretext task, by name: importing this module registers each task file.
import { colorizationTask } from './colorization.js';
import { contextTask } from './context.js';
import { deepclusterTask } from './deepcluster.js';
import { frameOrderTask } from './frame-order.js';
import { inpaintingTask } from './inpainting.js';
import { jigsawTask } from './jigsaw.js';
import { multitaskTask } from './multitask.js';
import { rotationTask } from './rotation.js';
import { superresTask } from './superres.js';
import { syntheticTask } from './synthetic.js';
import { getTask, registerTasks, tasks } from './catalog.js';

registerTasks(
  rotationTask,
  jigsawTask,
  contextTask,
  deepclusterTask,
  syntheticTask,
  frameOrderTask,
  inpaintingTask,
  superresTask,
  multitaskTask,
  colorizationTask,
);

export { getTask, tasks };
