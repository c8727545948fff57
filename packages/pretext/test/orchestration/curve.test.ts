// The accuracy-against-compute curve: every kept checkpoint probed at the CPU minutes it cost, the
// random-init network as the 0-minute point, a chart and a JSON of it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { accuracyCurve } from '../../src/orchestration/curve.js';
import { listCheckpoints } from '../../src/util/run-files.js';
import { train } from '../../src/train/trainer.js';
import { tempDir } from '../temp.js';

test('a probe per kept checkpoint against its pretraining CPU minutes, beside random init', async () => {
  const dir = tempDir('curve');
  const run = join(dir, 'rotation');
  await train(
    {
      ...{ task: 'rotation', data: 'fashion-mnist', backbone: 'resnet18-small', limit: 256, epochs: 2, batchSize: 64 },
      ...{ checkpointEverySteps: 3, keepLast: 10, threads: 2, out: run, optimizer: { name: 'sgd', lr: 0.05 } },
    },
    { progress: false, log: () => {} },
  );
  const kept = listCheckpoints(join(run, 'checkpoints')).map((c) => c.step);
  assert.deepEqual(kept, [3, 4, 6, 8]);
  const result = await accuracyCurve({
    ...{ runs: [run], out: join(dir, 'curve'), protocol: 'linear', train: 'fashion-mnist', test: 'fashion-mnist' },
    ...{ layer: 'layer2', trainLimit: 300, testLimit: 200, random: true, supervised: [0.05, 0.02] },
  });
  const points = result.runs[0].points;
  assert.deepEqual(
    points.map((p) => p.step),
    kept,
  );
  // CPU minutes grow with the step, across the run's checkpoints.
  for (let i = 1; i < points.length; i++) assert.ok(points[i].cpuMinutes > points[i - 1].cpuMinutes, JSON.stringify(points));
  for (const p of [...points.map((q) => q.top1), result.random!]) assert.ok(p > 10 && p <= 100, `top-1 ${p}`);
  // The supervised baseline: the network trained on the same 300 labels for each budget, shortest first.
  const supervised = result.supervised!;
  assert.equal(supervised.length, 2);
  assert.ok(supervised[0].cpuMinutes < supervised[1].cpuMinutes, JSON.stringify(supervised));
  assert.ok(supervised[1].cpuMinutes > 0.03 && supervised[1].cpuMinutes < 0.2, JSON.stringify(supervised));
  // A second or two of training on 300 labels may still sit at chance: only the score's range is checked.
  for (const p of supervised) assert.ok(p.top1 >= 0 && p.top1 <= 100, `top-1 ${p.top1}`);
  const svg = readFileSync(result.files.svg, 'utf8');
  assert.match(svg, /<title>supervised: /);
  assert.match(svg, /<title>rotation: 0, /);
  assert.match(svg, /random init/);
  assert.equal(JSON.parse(readFileSync(result.files.json, 'utf8')).runs[0].points.length, kept.length);
});
