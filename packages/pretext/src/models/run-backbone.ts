// The backbone of a Pretext run with its trained weights, read straight from the run's files, for
// tasks that need a fixed pretrained network (SRGAN's content loss). train/pretrained.ts rebuilds a
// run's whole task instance; tasks may not import train/, so this reads the few files it needs.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { safetensors, tidy } from '@pretext/torch';
import type { Backbone } from './backbone.js';
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

/** A run folder's best checkpoint sidecar, else its newest one. */
function sidecarOf(runDir: string): string {
  const dir = join(runDir, 'checkpoints');
  const names = existsSync(dir) ? readdirSync(dir) : [];
  const chosen = names.includes('best.json')
    ? 'best.json'
    : names
        .filter((f) => /^ckpt-\d+\.json$/.test(f))
        .sort()
        .at(-1);
  if (!chosen) throw new Error(`no checkpoint in ${dir}`);
  return join(dir, chosen);
}

/**
 * Loads the backbone module of a run (a run folder, or one of its checkpoint sidecars), in eval
 * mode and with gradients off: a fixed feature network.
 */
export function loadRunBackbone(path: string): RunBackbone {
  const sidecar = statSync(path).isDirectory() ? sidecarOf(path) : path;
  const runDir = dirname(dirname(sidecar));
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
