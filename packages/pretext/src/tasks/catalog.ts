// The task lookup, apart from the list of task files (registry.ts), so that a task that composes
// others (multitask) can look them up without importing the registry that imports it.
import type { PretextTask } from './task.js';

export const tasks: Record<string, PretextTask> = {};

export function registerTasks(...list: PretextTask[]): void {
  for (const task of list) tasks[task.name] = task;
}

export function getTask(name: string): PretextTask {
  const task = tasks[name];
  if (!task) throw new Error(`unknown task '${name}'; valid tasks: ${Object.keys(tasks).join(', ')}`);
  return task;
}
