// Optimizer-step benchmark: one SGD (Nesterov, weight decay) or Adam step over the parameters of a
// backbone with fixed gradients, Pretext (multi-tensor ops) beside PyTorch (its default for-loop
// step and its foreach step), 5 alternating rounds, min/median/max of each.
// Usage: node bench/optimizer-step.mjs [--model nin4] [--rounds 5]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as torch from '@pretext/torch';
import { createBackbone } from 'pretext';

const here = dirname(fileURLToPath(import.meta.url));
const { values: opts } = parseArgs({
  options: {
    model: { type: 'string', default: 'nin4' },
    rounds: { type: 'string', default: '5' },
    steps: { type: 'string', default: '300' },
  },
});
const steps = Number(opts.steps);
torch.setNumThreads(1);
const params = createBackbone(opts.model).parameters();
const dir = mkdtempSync(join(tmpdir(), 'pretext-optbench-'));
const shapes = join(dir, 'shapes.json');
writeFileSync(shapes, JSON.stringify(params.map((p) => p.shape)));

function pretextStep(kind) {
  const ps = params.map((p) => torch.keep(torch.randn(p.shape).requiresGrad_(true)));
  for (const p of ps) p.grad = torch.keep(torch.randn(p.shape));
  const opt =
    kind === 'sgd'
      ? new torch.optim.SGD(ps, { lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 5e-4 })
      : new torch.optim.Adam(ps, { lr: 1e-4, weightDecay: 5e-4 });
  for (let i = 0; i < 10; i++) opt.step();
  const start = performance.now();
  for (let i = 0; i < steps; i++) opt.step();
  const ms = (performance.now() - start) / steps;
  for (const p of ps) p.dispose();
  return ms;
}

function pytorchStep(kind, foreach) {
  const args = [join(here, 'optimizer-step.py'), '--shapes', shapes, '--optimizer', kind, '--steps', String(steps)];
  const r = spawnSync('/usr/bin/python3', foreach ? [...args, '--foreach'] : args, {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()).ms_per_step;
}

const spread = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return `min ${s[0].toFixed(3)} / median ${s[Math.floor(s.length / 2)].toFixed(3)} / max ${s.at(-1).toFixed(3)} ms`;
};
try {
  console.log(
    `optimizer step over ${opts.model}'s ${params.length} parameters, 1 thread, ${opts.rounds} alternating rounds of ${steps} steps`,
  );
  for (const kind of ['sgd', 'adam']) {
    const times = { pretext: [], 'pytorch (for-loop)': [], 'pytorch (foreach)': [] };
    for (let round = 0; round < Number(opts.rounds); round++) {
      times.pretext.push(pretextStep(kind));
      times['pytorch (for-loop)'].push(pytorchStep(kind, false));
      times['pytorch (foreach)'].push(pytorchStep(kind, true));
    }
    for (const [side, xs] of Object.entries(times)) console.log(`  ${kind.padEnd(5)} ${side.padEnd(19)} ${spread(xs)}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
