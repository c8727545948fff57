// A run's other networks under the protocols: SRGAN's discriminator read by the linear probe,
// trained and at random init, the choices an unknown module name lists, and fine-tuning that feeds
// a colorization backbone the L input it pretrained on, from RGB images.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Generator, noGrad, randn, setNumThreads, tidy, type nn } from '@pretext/torch';
import { resolveDataset, type Split } from '../../src/data/datasets.js';
import { randomBackbone } from '../../src/eval/finetune.js';
import { loadPretrainedModule } from '../../src/eval/pretrained-module.js';
import { evaluate, evaluateAllLayers, evaluateBackbone } from '../../src/eval/protocols.js';
import { train } from '../../src/train/trainer.js';
import { tempDir, writeBrightnessFolder } from './fixtures.js';

// One libtorch thread: the cores are shared with other processes.
setNumThreads(1);

const dir = tempDir('probe-modules');
const superresRun = join(dir, 'superres');
const quiet = () => {};
const fashion = { train: 'fashion-mnist', test: 'fashion-mnist', trainLimit: 300, testLimit: 100 };

const sameWeights = (a: nn.Module, b: nn.Module) => {
  const [pa, pb] = [a.parameters(), b.parameters()];
  return pa.length === pb.length && pa.every((p, i) => p.equal(pb[i]));
};

test("a short SRGAN run: the linear probe reads its discriminator's blocks, one or all", async () => {
  await train(
    {
      task: 'superres',
      data: 'fashion-mnist',
      backbone: 'srresnet-small',
      limit: 128,
      epochs: 1,
      batchSize: 32,
      threads: 1,
      out: superresRun,
      taskOptions: { warmupEpochs: 0, discriminatorWidth: 8 },
    },
    { progress: false, log: quiet },
  );
  const lines: string[] = [];
  const options = { protocol: 'linear' as const, checkpoint: superresRun, module: 'discriminator', ...fashion };
  const block2 = await evaluate({ ...options, layer: 'block2', log: (line) => lines.push(line) });
  assert.equal(block2.testSamples, 100);
  assert.ok(block2.top1 > 30, `discriminator block2: ${block2.top1}% (chance 10%)`);
  assert.ok(
    lines.some((line) => /^evaluating .*best\.json, module discriminator$/.test(line)),
    lines.join('\n'),
  );
  const all = await evaluateAllLayers(options);
  assert.deepEqual(
    all.layers.map((l) => l.block),
    ['block1', 'block2', 'block3', 'block4'],
  );
  assert.ok(all.layers.every((l) => l.result.testSamples === 100));
});

test('at random init the module is built again from the seed, without the trained weights, and fed the same input', async () => {
  const trained = loadPretrainedModule(superresRun, { module: 'discriminator' });
  const random = loadPretrainedModule(superresRun, { module: 'discriminator', randomSeed: 0 });
  assert.deepEqual([trained.init, random.init, random.module], ['checkpoint', 'random', 'discriminator']);
  assert.deepEqual(random.backbone.blockNames, trained.backbone.blockNames);
  assert.ok(!sameWeights(random.backbone, trained.backbone));
  assert.ok(sameWeights(random.backbone, loadPretrainedModule(superresRun, { module: 'discriminator', randomSeed: 0 }).backbone));
  // The discriminator judges full-resolution images as the loader gives them; the backbone sees the bicubic downsampling.
  assert.equal(trained.encoderInput, undefined);
  const backbone = loadPretrainedModule(superresRun);
  tidy(() => {
    const images = randn([2, 1, 28, 28], new Generator(0));
    assert.deepEqual(backbone.encoderInput!(images).shape, [2, 1, 14, 14]);
    const [ours, baseline] = noGrad(() => [trained, random].map((m) => m.backbone.forwardTo(images, 'block2')));
    assert.ok(!ours.allclose(baseline, 1e-3, 1e-3));
  });
  // The backbone at random init is the baseline randomBackbone gives.
  assert.ok(sameWeights(loadPretrainedModule(superresRun, { randomSeed: 3 }).backbone, randomBackbone('srresnet-small', 1, 3)));

  const lines: string[] = [];
  const result = await evaluate({
    protocol: 'linear',
    checkpoint: superresRun,
    module: 'discriminator',
    init: 'random',
    layer: 'block2',
    ...fashion,
    log: (line) => lines.push(line),
  });
  assert.equal(result.testSamples, 100);
  assert.ok(lines.includes('evaluating the superres discriminator at random init (seed 0)'), lines.join('\n'));
});

test('an unknown module is an error that lists the modules to probe; --module needs a run', async () => {
  const choices = /the superres run .*best\.json has no module 'critic' to probe; probe-able modules: backbone, discriminator/;
  assert.throws(() => loadPretrainedModule(superresRun, { module: 'critic' }), choices);
  assert.throws(() => loadPretrainedModule(superresRun, { module: 'toString' }), /no module 'toString'/);
  await assert.rejects(evaluate({ protocol: 'knn', checkpoint: superresRun, module: 'critic', ...fashion }), choices);
  await assert.rejects(
    evaluate({ protocol: 'knn', backbone: 'nin4', init: 'random', module: 'discriminator', ...fashion }),
    /--module names a module of the run given by --checkpoint/,
  );
  // The CLI takes the flag and passes it through.
  const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  const pretext = (...args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 60_000 });
  assert.match(pretext('eval', '--help').stdout, /--checkpoint runs\/x \[--module NAME\] \[--init random\]/);
  const cli = pretext('eval', '--checkpoint', superresRun, '--module', 'critic', '--train', 'fashion-mnist', '--test', 'fashion-mnist');
  assert.equal(cli.status, 1);
  assert.match(cli.stderr, choices);
});

test('fine-tuning a colorization run on RGB images feeds its backbone the L channel it pretrained on', async () => {
  // Two classes that differ in brightness (which L keeps), 8 train and 4 val RGB images each.
  const data = join(dir, 'photos');
  await writeBrightnessFolder(data, 16);
  const previous = process.env.PRETEXT_DATA;
  process.env.PRETEXT_DATA = join(dir, 'cache');
  try {
    const colorRun = join(dir, 'colorization');
    await train(
      {
        task: 'colorization',
        data,
        backbone: 'alexnet-small',
        epochs: 1,
        batchSize: 8,
        threads: 1,
        out: colorRun,
        taskOptions: { loss: 'regression', decoderWidth: 8, priorSamples: 16 },
      },
      { progress: false, log: quiet },
    );
    const finetune = { epochs: 2, batchSize: 8 };
    const result = await evaluate({ protocol: 'finetune', checkpoint: colorRun, train: data, test: data, finetune, log: quiet });
    assert.deepEqual([result.protocol, result.trainSamples, result.testSamples], ['finetune', 16, 8]);
    // Without its encoderInput the 1-channel backbone cannot take the RGB images.
    const { backbone, normalization } = loadPretrainedModule(colorRun);
    const load = (split: Split) => resolveDataset(data, { split, log: quiet });
    const [trainStore, testStore] = [await load('train'), await load('test')];
    await assert.rejects(
      evaluateBackbone('finetune', { backbone, train: trainStore, test: testStore, block: 'conv5', normalization }, { finetune }),
      /the backbone takes 1-channel images but the data has 3 channels/,
    );
  } finally {
    if (previous === undefined) delete process.env.PRETEXT_DATA;
    else process.env.PRETEXT_DATA = previous;
  }
});
