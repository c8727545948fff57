// The backbone of a Pretext run with its trained weights, read straight from the run's files, for
// tasks that need a fixed pretrained network (SRGAN's content loss). train/pretrained.ts rebuilds a
// run's whole task instance; tasks may not import train/, so this reads the few files it needs.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { safetensors, tidy } from '@pretext/torch';
import type { Backbone } from './backbone.js';
import { findCheckpoint } from '../util/run-files.js';
import { createBackbone } from './index.js';

export interface RunBackbone {
  backbone: Backbone;
  /** The registered backbone name the run trained. */
  name: string;
  /** Per-channel normalization of the run's inputs (its data.json). */
  normalization: { mean: number[]; std: number[] };
}

const readJson = (path: string): any => {
  if (!existsSync(path)) throw new Error(`${path} is missing: not a Pretext run`);
  return JSON.parse(readFileSync(path, 'utf8'));
};

/**
 * Loads the backbone module of a run (a run folder, or one of its checkpoint sidecars), in eval
 * mode and with gradients off: a fixed feature network.
 */
export function loadRunBackbone(path: string): RunBackbone {
  const { sidecar, runDir } = findCheckpoint(path);
  const { backbone: name } = readJson(join(runDir, 'config.json'));
  const { channels, mean, std } = readJson(join(runDir, 'data.json'));
  const backbone = createBackbone(name, channels);
  const prefix = 'model.backbone.';
  tidy(() => {
    const { tensors } = safetensors.load(join(dirname(sidecar), readJson(sidecar).file));
    backbone.loadStateDict(new Map([...tensors].filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t])));
  });
  backbone.eval();
  for (const p of backbone.parameters()) p.requiresGrad_(false);
  return { backbone, name, normalization: { mean, std } };
}
