// A tiny real run: rotation pretraining on 512 Fashion-MNIST images, embed, the protocols, the
// pictures and a small benchmark table.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { runBench, type BenchResult } from '../../src/orchestration/bench.js';
import { embed } from '../../src/eval/features.js';
import { confusionHeatmap } from '../../src/eval/pictures.js';
import { evaluate } from '../../src/eval/protocols.js';
import { train } from '../../src/train/trainer.js';
import { tempDir } from './fixtures.js';

const dir = tempDir('e2e');
const runDir = join(dir, 'run');
const quiet = () => {};

test('pretrain, embed and evaluate on a Fashion-MNIST slice, well above chance', async () => {
  const run = await train(
    {
      task: 'rotation',
      data: 'fashion-mnist',
      backbone: 'resnet18-small',
      limit: 512,
      epochs: 1,
      batchSize: 64,
      out: runDir,
      optimizer: { name: 'sgd', lr: 0.05 },
    },
    { progress: false, log: quiet },
  );
  assert.equal(run.steps, 8);

  const pictures = join(dir, 'pictures');
  const common = { checkpoint: runDir, data: 'fashion-mnist', layer: 'layer3', log: quiet };
  const trainFile = join(dir, 'train.safetensors');
  const testFile = join(dir, 'test.safetensors');
  await embed({ ...common, split: 'train', limit: 512, out: trainFile });
  const embedded = await embed({ ...common, split: 'test', limit: 256, out: testFile, pictures });
  assert.deepEqual(embedded.file.features.shape, [256, 64]);
  assert.equal(embedded.file.meta.layer, 'layer3');

  for (const protocol of ['linear', 'knn'] as const) {
    // k = 20 suits a bank of 512 (the default 200 is for banks of tens of thousands).
    const result = await evaluate({ protocol, train: trainFile, test: testFile, knn: { k: 20 } });
    assert.ok(result.top1 > 40, `${protocol}: ${result.top1}% (chance 10%)`);
    assert.equal(result.testSamples, 256);
    assert.equal(
      result.confusion.flat().reduce((a, b) => a + b, 0),
      256,
    );
  }
  const lowShot = await evaluate({ protocol: 'linear', train: trainFile, test: testFile, labelsPerClass: 20 });
  assert.equal(lowShot.trainSamples, 200);

  const map = readFileSync(join(pictures, 'embedding-map.svg'), 'utf8');
  assert.equal(map.match(/<circle [^>]*r="2.6"/g)?.length, 256);
  assert.match(map, /data:image\/png;base64,/);
  assert.match(map, /Ankle boot/);
  const grid = await sharp(join(pictures, 'retrieval.png')).metadata();
  assert.deepEqual([grid.width, grid.height], [9 * (56 + 8) + 12, 8 * (56 + 8)]);
  const heatmap = confusionHeatmap(lowShot, join(pictures, 'confusion.svg'));
  assert.match(readFileSync(heatmap, 'utf8'), /Trouser/);
});

test('fine-tuning runs end to end from a run folder', async () => {
  const result = await evaluate({
    protocol: 'finetune',
    checkpoint: runDir,
    train: 'fashion-mnist',
    test: 'fashion-mnist',
    trainLimit: 256,
    testLimit: 128,
    finetune: { epochs: 1, batchSize: 64 },
  });
  assert.equal(result.protocol, 'finetune');
  assert.equal(result.trainSamples, 256);
  assert.equal(result.compute.epochs, 1);
});

test('the benchmark writes a table with the pretext row, both baselines and the best block', async () => {
  const out = join(dir, 'bench');
  const result: BenchResult = await runBench({
    out,
    datasets: ['fashion-mnist'],
    rows: [{ name: 'rotation', runs: { 'fashion-mnist': runDir } }],
    protocols: ['linear', 'knn', 'finetune'],
    labelsPerClass: [20],
    layerPools: ['gap', 'grid2'],
    // The main columns read each row's best block of the by-block pass.
    block: 'best',
    trainLimit: 400,
    testLimit: 200,
    // All labels under a wall-clock budget (as the pretext rows'), K per class for one epoch.
    supervised: { epochs: 1, batchSize: 64, budget: { wallMinutes: 0.1, calibrationSteps: 3 } },
    protocolOptions: { knn: { k: 20 }, finetune: { epochs: 1, batchSize: 64 } },
    log: quiet,
  });
  assert.deepEqual(result.columns, ['linear', 'linear@20', 'knn', 'knn@20', 'finetune', 'finetune@20']);
  assert.deepEqual(
    result.rows.map((r) => r.name),
    ['rotation', 'random init', 'supervised'],
  );
  for (const row of result.rows) {
    for (const c of ['linear', 'linear@20', 'knn', 'knn@20']) assert.ok(row.cells[c].top1 > 20, `${row.name} ${c}: ${row.cells[c].top1}%`);
    for (const c of ['linear@20', 'knn@20']) assert.equal(row.cells[c].result.details.labelsPerClass, 20, `${row.name} ${c}`);
    // One epoch of fine-tuning only has to run and be reported.
    assert.equal(row.cells['finetune@20'].result.trainSamples, 200);
  }
  const rotation = result.rows[0];
  // Every block under both poolings.
  const blocks = ['stem', 'layer1', 'layer2', 'layer3', 'layer4'];
  assert.deepEqual(
    rotation.layers!.map((l) => `${l.block} ${l.pool}`),
    [...blocks.map((b) => `${b} gap`), ...blocks.map((b) => `${b} grid2`)],
  );
  assert.ok(rotation.bestBlock);
  for (const row of result.rows.slice(0, 2)) {
    assert.equal(row.block, row.bestBlock, row.name);
    const best = row.layers!.find((l) => l.block === row.bestBlock && l.pool === 'gap')!;
    assert.ok(row.layers!.every((l) => l.pool !== 'gap' || l.top1 <= best.top1));
    assert.equal(row.cells.linear.top1, best.top1, `${row.name}: the linear cell is the best block's probe`);
  }
  // The supervised row has no by-block pass: it reads the default block (a ResNet's last).
  assert.equal(result.rows[2].block, 'layer4');
  assert.equal(rotation.seed, 0);
  // What the probed checkpoint had cost, read from it: epochs from its images, its CPU minutes.
  assert.equal(rotation.pretraining!.epochs, 1);
  assert.equal(rotation.pretraining!.steps, 8);
  assert.ok(rotation.pretraining!.cpuMinutes! > 0 && rotation.pretraining!.cpuMinutes! < 5, JSON.stringify(rotation.pretraining));
  const md = readFileSync(join(out, 'results.md'), 'utf8');
  assert.match(md, /\| rotation \| 1 ep, 8 steps/);
  assert.match(md, /\| random init \| none \|/);
  // The budget, not the one epoch, decided how long the all-labels supervised run trained.
  const supervised = result.rows[2].pretraining!;
  // (One epoch of these 400 images takes a second or two; the plan, made after 3 steps, may fall a little short.)
  assert.equal(supervised.budget, '0.1min');
  assert.ok(supervised.wallMinutes! >= 0.06 && supervised.wallMinutes! < 0.3, `${supervised.wallMinutes} wall minutes`);
  assert.match(md, /\| supervised \| labels, budget 0\.1min, \d+ ep/);
  assert.match(md, /Linear probe by block/);
  assert.match(md, /- rotation, grid2: .*\*\*/);
  assert.match(readFileSync(join(out, 'chart-fashion-mnist.svg'), 'utf8'), /<rect [^>]*fill="#4e79a7"/);
  assert.ok(existsSync(join(out, 'confusion-fashion-mnist-random_init.svg')));
  assert.equal(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).rows.length, 3);
});

test('a row whose network differs from the shared baseline gets its own random-init row, fed as it is', async () => {
  const run = join(dir, 'rotation-32px');
  await train(
    { task: 'rotation', data: 'fashion-mnist', backbone: 'resnet18-small', imageSize: 32, limit: 128, epochs: 1, batchSize: 64, out: run },
    { progress: false, log: quiet },
  );
  const result = await runBench({
    // A second row of the same network shares the first one's random-init row.
    ...{ out: join(dir, 'bench-32px'), datasets: ['fashion-mnist'] },
    rows: [
      { name: 'rot32', runs: { 'fashion-mnist': run } },
      { name: 'again', runs: { 'fashion-mnist': run } },
    ],
    ...{ protocols: ['knn'], layers: false, baselines: { supervised: false }, trainLimit: 200, testLimit: 100, log: quiet },
    protocolOptions: { knn: { k: 10 } },
  });
  assert.deepEqual(
    result.rows.map((r) => r.name),
    ['rot32', 'random init (rot32, again)', 'again', 'random init'],
  );
  // The matched row is the run's own network (built from its folder) at random init.
  const matched = result.rows[1];
  assert.equal(matched.kind, 'random');
  assert.equal(matched.config.runDir, run);
  assert.equal(matched.cells.knn.result.trainSamples, 200);
});

test('a bench that stops midway keeps the rows it finished, and --resume evaluates only the rest', async () => {
  const out = join(dir, 'bench-stopped');
  const settings = { out, datasets: ['fashion-mnist'], protocols: ['knn' as const], layers: false, baselines: { supervised: false } };
  const limits = { trainLimit: 200, testLimit: 100, protocolOptions: { knn: { k: 10 } } };
  const done = { name: 'done', runs: { 'fashion-mnist': runDir } };
  await assert.rejects(
    runBench({ ...settings, ...limits, rows: [done, { name: 'gone', runs: { 'fashion-mnist': join(dir, 'no-such-run') } }], log: quiet }),
    /no-such-run/,
  );
  const saved = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as BenchResult;
  assert.deepEqual(
    saved.rows.map((r) => r.name),
    ['done'],
  );
  assert.ok(saved.rows[0].cells.knn.top1 > 10);
  assert.match(readFileSync(join(out, 'results.md'), 'utf8'), /\| done \|/);

  const lines: string[] = [];
  const resumed = await runBench({
    ...{ ...settings, ...limits, resume: true, log: (l: string) => lines.push(l) },
    rows: [done, { name: 'again', runs: { 'fashion-mnist': runDir } }],
  });
  assert.deepEqual(
    resumed.rows.map((r) => r.name),
    ['done', 'again', 'random init'],
  );
  assert.deepEqual(resumed.rows[0], saved.rows[0], 'the finished row is kept as it was');
  assert.ok(lines.some((l) => /reusing row 'done'/.test(l)));
  assert.ok(lines.some((l) => /evaluating again/.test(l)) && !lines.some((l) => /evaluating done/.test(l)));
  // Another protocol setting cannot reuse those rows.
  await assert.rejects(
    runBench({ ...settings, ...limits, protocolOptions: { knn: { k: 5 } }, resume: true, rows: [done], log: quiet }),
    /--resume: .*results\.json was written with other settings/,
  );
});
