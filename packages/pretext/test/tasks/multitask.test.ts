// Multi-task pretraining: one backbone, rotation and jigsaw heads, weighted losses under one
// optimizer; run by the trainer like any task.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as torch from '@pretext/torch';
import { imageBatch } from '../../src/data/loader.js';
import type { SampleStore } from '../../src/data/store.js';
import { createBackbone } from '../../src/models/index.js';
import { multitaskTask } from '../../src/tasks/multitask.js';
import { train } from '../../src/train/trainer.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const context = { inChannels: 3, imageSize: 32 };
const tasks = [
  { name: 'rotation', weight: 1, options: {} },
  { name: 'jigsaw', weight: 0.25, options: { permutations: 10, tileFeatures: 16, hidden: 32 } },
];

test("the loss is the weighted sum of the tasks' losses, with every head and the shared backbone trained", () => {
  torch.manualSeed(0);
  const backbone = createBackbone('alexnet-small');
  const instance = multitaskTask.create(backbone, multitaskTask.options.parse({ tasks }), context);
  assert.deepEqual(Object.keys(instance.modules).sort(), ['backbone', 'jigsaw.head', 'rotation.head']);
  const phase = instance.phases();
  assert.equal(phase.length, 1);
  const owned = new Set(phase[0].parameters);
  for (const module of Object.values(instance.modules)) assert.ok(module.parameters().every((p) => owned.has(p)));
  const images = torch.randn([4, 3, 32, 32]);
  const prepared = instance.prepare(imageBatch(images), new torch.Generator(1));
  const { loss, metrics } = instance.step(prepared, 'main');
  const [rotation, jigsaw] = [metrics['rotation.loss'], metrics['jigsaw.loss']].map((m) => (m as torch.Tensor).item());
  assert.ok(Math.abs(loss.item() - (rotation + 0.25 * jigsaw)) < 1e-5);
  assert.ok('rotation.acc' in metrics && 'jigsaw.acc' in metrics);
  // A few steps on one batch lower both tasks' losses through the shared backbone.
  const opt = new torch.optim.SGD(phase[0].parameters, { lr: 0.05, momentum: 0.9 });
  let last = { rotation, jigsaw };
  for (let i = 0; i < 15; i++) {
    torch.tidy(() => {
      opt.zeroGrad();
      const out = instance.step(prepared, 'main');
      out.loss.backward();
      opt.step();
      last = {
        rotation: (out.metrics['rotation.loss'] as torch.Tensor).item(),
        jigsaw: (out.metrics['jigsaw.loss'] as torch.Tensor).item(),
      };
    });
  }
  assert.ok(last.rotation < rotation && last.jigsaw < jigsaw, JSON.stringify({ rotation, jigsaw, last }));
});

test('tasks that read other data or need their own phases are refused by name', () => {
  const backbone = createBackbone('alexnet-small');
  assert.throws(
    () => multitaskTask.create(backbone, multitaskTask.options.parse({ tasks: [{ name: 'rotation' }, { name: 'frame-order' }] }), context),
    /'frame-order' reads other data than single images .*tasks\[1\]/,
  );
  assert.throws(
    () =>
      multitaskTask.create(
        backbone,
        multitaskTask.options.parse({ tasks: [{ name: 'rotation' }, { name: 'rotation', options: { rotations: 3 } }] }),
        context,
      ),
    /taskOptions\.tasks\[1\]\.options/,
  );
});

test("the trainer runs it and logs each task's metrics", async () => {
  const out = mkdtempSync(join(tmpdir(), 'pretext-multitask-'));
  dirs.push(out);
  const n = 32;
  const pixels = new Uint8Array(n * 32 * 32 * 3).map((_, i) => (i * 7919) % 251);
  const store: SampleStore = {
    images: pixels,
    n,
    height: 32,
    width: 32,
    channels: 3,
    labels: new Int32Array(n).fill(-1),
    classNames: [],
    paths: Array.from({ length: n }, (_, i) => `s${i}`),
  };
  const result = await train(
    { task: 'multitask', data: 'memory', backbone: 'alexnet-small', batchSize: 8, epochs: 1, threads: 1, taskOptions: { tasks }, out },
    { store, progress: false, log: () => {} },
  );
  assert.equal(result.steps, 4);
  const metrics = result.history[0].metrics;
  for (const key of ['loss', 'rotation.loss', 'rotation.acc', 'jigsaw.loss', 'jigsaw.acc']) assert.ok(Number.isFinite(metrics[key]), key);
});
