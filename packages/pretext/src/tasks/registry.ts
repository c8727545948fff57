// Every pretext task, by name.
import { contextTask } from './context.js';
import { jigsawTask } from './jigsaw.js';
import { rotationTask } from './rotation.js';
import type { PretextTask } from './task.js';

export const tasks: Record<string, PretextTask> = {
  [rotationTask.name]: rotationTask,
  [jigsawTask.name]: jigsawTask,
  [contextTask.name]: contextTask,
};

export function getTask(name: string): PretextTask {
  const task = tasks[name];
  if (!task) throw new Error(`unknown task '${name}'; valid tasks: ${Object.keys(tasks).join(', ')}`);
  return task;
}
