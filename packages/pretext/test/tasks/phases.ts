// Runs a task's optimizer phases as the trainer does, for task tests: per step each active phase in
// order, with the other phases' parameters frozen, one Adam per phase.
import { optim, tidy } from '@pretext/torch';
import type { PretextBatch, TaskInstance } from '../../src/tasks/task.js';

export interface PhaseLoopOptions {
  lr?: number;
  betas?: [number, number];
  /** The epoch the phases' `active` sees (default 0). */
  epoch?: number;
}

/** `steps` steps on one prepared batch; the logged metrics of each step, prefixed `phase/`. */
export function trainPhases(
  task: TaskInstance,
  prepared: PretextBatch,
  steps: number,
  options: PhaseLoopOptions = {},
): Record<string, number>[] {
  const phases = task.phases();
  const optimizers = phases.map((p) => new optim.Adam(p.parameters, { lr: options.lr ?? 2e-3, betas: options.betas ?? [0.5, 0.999] }));
  const log: Record<string, number>[] = [];
  for (let s = 0; s < steps; s++) {
    const metrics: Record<string, number> = {};
    phases.forEach((phase, k) => {
      if (phase.active && !phase.active({ epoch: options.epoch ?? 0, step: s })) return;
      for (const other of phases) for (const p of other.parameters) p.requiresGrad_(other === phase);
      tidy(() => {
        optimizers[k].zeroGrad();
        const result = task.step(prepared, phase.name);
        result.loss.backward();
        optimizers[k].step();
        for (const [name, v] of Object.entries(result.metrics)) metrics[`${phase.name}/${name}`] = typeof v === 'number' ? v : v.item();
      });
    });
    log.push(metrics);
  }
  for (const p of phases.flatMap((phase) => phase.parameters)) p.requiresGrad_(true);
  return log;
}

/**
 * One step of one phase with nothing frozen: its optimizer (Adam) steps its own parameters. Says,
 * per phase name, whether that phase's parameters changed and whether any of them got a gradient.
 */
export function stepOnePhase(
  task: TaskInstance,
  prepared: PretextBatch,
  name: string,
): Record<string, { changed: boolean; gradient: boolean }> {
  const phases = task.phases();
  const before = phases.map((p) => p.parameters.map((x) => x.clone()));
  for (const p of phases.flatMap((phase) => phase.parameters)) p.grad = undefined;
  tidy(() => {
    const phase = phases.find((p) => p.name === name)!;
    const opt = new optim.Adam(phase.parameters, { lr: 1e-3 });
    task.step(prepared, name).loss.backward();
    opt.step();
  });
  return Object.fromEntries(
    phases.map((phase, k) => [
      phase.name,
      {
        changed: phase.parameters.some((x, i) => !x.equal(before[k][i])),
        gradient: phase.parameters.some((x) => x.grad !== undefined),
      },
    ]),
  );
}
