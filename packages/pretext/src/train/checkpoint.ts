// Checkpoints: tensors (modules, optimizer state, RNG states) in one safetensors file, and a JSON
// sidecar with counters, hyperparameters and loader position. Both are written atomically and the
// sidecar goes last, so it is the commit point: a write killed half-way leaves the previous
// checkpoint as the latest valid one.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { makeDirectory, safetensors, type nn, type optim, type Tensor } from '@pretext/torch';
import type { TaskState } from '../tasks/task.js';
import { listCheckpoints } from '../util/run-files.js';

export interface CheckpointState {
  /** Optimizer steps done so far (all phases advance together). */
  step: number;
  /** Epoch to continue in and the next batch index within it. */
  epoch: number;
  batch: number;
  modules: Record<string, nn.Module>;
  optimizers: Record<string, optim.Optimizer<{ lr: number }>>;
  schedulers: Record<string, optim.LRScheduler>;
  /** Named RNG states (uint8 tensors). */
  rng: Record<string, Tensor>;
  /** Free-form JSON: metrics, best score, thread count... */
  info: Record<string, unknown>;
  /** What the task keeps besides its modules (assignments, priors...). */
  taskState?: TaskState;
}

interface Sidecar {
  format: 1;
  file: string;
  step: number;
  epoch: number;
  batch: number;
  optimizers: Record<string, { paramGroups: unknown[]; scalars: Record<string, Record<string, number>> }>;
  schedulers: Record<string, { lastStep: number }>;
  info: Record<string, unknown>;
  taskState?: unknown;
}

const pad = (step: number) => String(step).padStart(9, '0');

export function checkpointName(step: number): string {
  return `ckpt-${pad(step)}`;
}

/** Writes a checkpoint; returns its sidecar path. */
export function saveCheckpoint(dir: string, state: CheckpointState, name = checkpointName(state.step)): string {
  makeDirectory(dir);
  const tensors = new Map<string, Tensor>();
  for (const [moduleName, module] of Object.entries(state.modules)) {
    for (const [key, t] of module.stateDict()) tensors.set(`model.${moduleName}.${key}`, t);
  }
  const optimizers: Sidecar['optimizers'] = {};
  for (const [phase, opt] of Object.entries(state.optimizers)) {
    const sd = opt.stateDict();
    const scalars: Record<string, Record<string, number>> = {};
    for (const [index, entries] of Object.entries(sd.state)) {
      for (const [key, value] of Object.entries(entries)) {
        if (typeof value === 'number') (scalars[index] ??= {})[key] = value;
        else tensors.set(`optim.${phase}.${index}.${key}`, value);
      }
    }
    optimizers[phase] = { paramGroups: sd.paramGroups, scalars };
  }
  for (const [key, t] of Object.entries(state.rng)) tensors.set(`rng.${key}`, t);
  for (const [key, t] of Object.entries(state.taskState?.tensors ?? {})) tensors.set(`task.${key}`, t);
  safetensors.save(join(dir, `${name}.safetensors`), tensors, { format: 'pretext-checkpoint-1' });
  const sidecar: Sidecar = {
    format: 1,
    file: `${name}.safetensors`,
    step: state.step,
    epoch: state.epoch,
    batch: state.batch,
    optimizers,
    schedulers: Object.fromEntries(Object.entries(state.schedulers).map(([k, s]) => [k, s.stateDict()])),
    info: state.info,
    taskState: state.taskState?.json,
  };
  const path = join(dir, `${name}.json`);
  safetensors.writeFileAtomic(path, Buffer.from(JSON.stringify(sidecar, null, 1)));
  return path;
}

export { listCheckpoints, type CheckpointListing } from '../util/run-files.js';

export interface LoadedCheckpoint {
  step: number;
  epoch: number;
  batch: number;
  info: Record<string, unknown>;
  rng: Record<string, Tensor>;
  taskState: TaskState;
}

/**
 * Restores modules, optimizers and schedulers in place from a sidecar path. Throws with the file
 * name when anything is missing or mis-shaped.
 */
export function loadCheckpoint(
  sidecarPath: string,
  target: Omit<CheckpointState, 'step' | 'epoch' | 'batch' | 'rng' | 'info'>,
): LoadedCheckpoint {
  const { sidecar, take } = readCheckpoint(sidecarPath);
  loadModules(sidecarPath, take, target.modules);
  for (const [phase, opt] of Object.entries(target.optimizers)) {
    const saved = sidecar.optimizers[phase];
    if (!saved) throw new Error(`checkpoint ${sidecarPath} has no optimizer state for phase '${phase}'`);
    const state: Record<number, optim.ParamState> = {};
    for (const [key, t] of take(`optim.${phase}.`)) {
      const [index, field] = key.split('.');
      (state[Number(index)] ??= {})[field] = t;
    }
    for (const [index, scalars] of Object.entries(saved.scalars)) Object.assign((state[Number(index)] ??= {}), scalars);
    opt.loadStateDict({ state, paramGroups: saved.paramGroups as never });
  }
  for (const [phase, scheduler] of Object.entries(target.schedulers)) {
    const saved = sidecar.schedulers[phase];
    if (saved) scheduler.loadStateDict(saved);
  }
  return {
    step: sidecar.step,
    epoch: sidecar.epoch,
    batch: sidecar.batch,
    info: sidecar.info,
    rng: Object.fromEntries(take('rng.')),
    taskState: { tensors: Object.fromEntries(take('task.')), json: sidecar.taskState },
  };
}

/** A checkpoint whose files cannot be read or parsed (a truncated write, a damaged disk). */
export class UnreadableCheckpointError extends Error {}

/**
 * Restores the newest checkpoint in `dir` that reads back whole: an unreadable one (truncated
 * sidecar or tensor file) is named in a warning and the next older one is tried. Returns
 * undefined when there is none.
 */
export function loadLatestCheckpoint(
  dir: string,
  target: Omit<CheckpointState, 'step' | 'epoch' | 'batch' | 'rng' | 'info'>,
  warn: (line: string) => void,
): (LoadedCheckpoint & { name: string }) | undefined {
  for (const candidate of listCheckpoints(dir).reverse()) {
    try {
      return { ...loadCheckpoint(candidate.sidecar, target), name: candidate.name };
    } catch (e) {
      if (!(e instanceof UnreadableCheckpointError)) throw e;
      warn(`warning: ${e.message}; trying the previous checkpoint`);
    }
  }
  return undefined;
}

/** Removes temporary files that a run killed during a checkpoint write left behind. */
export function removeOrphanedTemporaries(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const orphans = readdirSync(dir).filter((f) => f.startsWith('.') && f.endsWith('.tmp'));
  for (const f of orphans) rmSync(join(dir, f), { force: true });
  return orphans;
}

/** Deletes all but the last `keepLast` checkpoints. */
export function pruneCheckpoints(dir: string, keepLast: number): void {
  const all = listCheckpoints(dir);
  for (const c of all.slice(0, Math.max(0, all.length - keepLast))) {
    rmSync(c.sidecar, { force: true });
    rmSync(join(dir, `${c.name}.safetensors`), { force: true });
  }
}

/** Reads only the module weights of a checkpoint (for embed, show and eval). */
export function loadModuleWeights(
  sidecarPath: string,
  modules: Record<string, nn.Module>,
): { info: Record<string, unknown>; taskState?: TaskState } {
  const { sidecar, take } = readCheckpoint(sidecarPath);
  loadModules(sidecarPath, take, modules);
  const tensors = Object.fromEntries(take('task.'));
  const hasState = sidecar.taskState !== undefined || Object.keys(tensors).length > 0;
  return { info: sidecar.info, taskState: hasState ? { tensors, json: sidecar.taskState } : undefined };
}

type Take = (prefix: string) => Map<string, Tensor>;

/** Parses a sidecar and its tensor file; `take(prefix)` returns the tensors under a prefix, without it. */
function readCheckpoint(sidecarPath: string): { sidecar: Sidecar; take: Take } {
  let sidecar: Sidecar;
  try {
    sidecar = JSON.parse(readFileSync(sidecarPath, 'utf8')) as Sidecar;
  } catch (e) {
    throw new UnreadableCheckpointError(`checkpoint sidecar ${sidecarPath} is unreadable: ${(e as Error).message}`);
  }
  if (sidecar.format !== 1) throw new Error(`checkpoint ${sidecarPath}: unknown format ${String(sidecar.format)}`);
  const tensorFile = join(sidecarPath, '..', sidecar.file);
  let tensors: Map<string, Tensor>;
  try {
    ({ tensors } = safetensors.load(tensorFile));
  } catch (e) {
    throw new UnreadableCheckpointError(`checkpoint tensor file ${tensorFile} is unreadable: ${(e as Error).message}`);
  }
  const take: Take = (prefix) => new Map([...tensors].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
  return { sidecar, take };
}

function loadModules(sidecarPath: string, take: Take, modules: Record<string, nn.Module>): void {
  for (const [name, module] of Object.entries(modules)) {
    try {
      module.loadStateDict(take(`model.${name}.`));
    } catch (e) {
      throw new Error(`checkpoint ${sidecarPath}, module '${name}': ${(e as Error).message}`);
    }
  }
}
