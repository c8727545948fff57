// A patch task's backbone read as it was trained, tile by tile (Kolesnikov et al. 2019 average the
// representations of an image's patches for jigsaw and relative patch location): the 3x3 grid of
// cells of each image, the centre `--tile` pixels of each cell normalized on its own (jigsaw's tiles
// are), every block's map globally pooled per tile and laid out 3x3, then the linear probe (2x2 grid)
// by block, as `pretext eval --layer all`. `--whole` reads the whole image instead, and `--size S`
// feeds the images at S pixels (the run's own size by default). `--recalibrate-bn N` first
// re-estimates the BatchNorm running statistics on N unlabeled train images as the probe feeds them
// (momentum 0.1 over batches of 128), in case tile statistics do not fit whole images.
//
// node bench/patch-probe.mjs --checkpoint runs/jigsaw-gap-30 [--init random] [--tile 21] [--whole] [--size 32] [--recalibrate-bn 6400]
import { parseArgs } from 'node:util';
import { noGrad, setNumThreads, stack, tidy } from '@pretext/torch';
import { resolveDataset } from 'pretext/data/datasets';
import { evalLoader } from 'pretext/eval/features';
import { loadPretrainedModule } from 'pretext/eval/pretrained-module';
import { normalizePatches } from 'pretext/tasks/patches';
import { evaluateLayers } from 'pretext/eval/protocols';
import { subsetIndices } from 'pretext/util/random';

const { values } = parseArgs({
  options: {
    checkpoint: { type: 'string' },
    init: { type: 'string', default: 'checkpoint' },
    tile: { type: 'string' },
    whole: { type: 'boolean', default: false },
    size: { type: 'string' },
    limit: { type: 'string', default: '10000' },
    threads: { type: 'string', default: '1' },
    'recalibrate-bn': { type: 'string', default: '0' },
  },
});
if (!values.checkpoint) throw new Error('give --checkpoint RUN');
setNumThreads(Number(values.threads));
const run = loadPretrainedModule(values.checkpoint, { randomSeed: values.init === 'random' ? 0 : undefined });
const size = Number(values.size ?? run.imageSize);
const cell = Math.floor(size / 3);
const tile = Number(values.tile ?? cell);
if (!(tile > 0 && tile <= cell)) throw new Error(`--tile must be in 1..${cell} (the cell of a ${size}-px image)`);

/** N x C x S x S images to N x 9 x C x tile x tile, each tile normalized over its own pixels. */
function tiles(images) {
  const origin = Math.floor((size - 3 * cell) / 2) + Math.floor((cell - tile) / 2);
  const cells = [];
  for (let row = 0; row < 3; row++)
    for (let col = 0; col < 3; col++) cells.push(images.narrow(2, origin + row * cell, tile).narrow(3, origin + col * cell, tile));
  return normalizePatches(stack(cells, 1));
}

const trunk = run.backbone;
/** The backbone's blocks over the nine tiles of each image, each tile's map pooled to one vector, as N x C x 3 x 3 maps. */
const tileReader = {
  blockNames: trunk.blockNames,
  blockChannels: trunk.blockChannels,
  inChannels: trunk.inChannels,
  constructor: { name: 'TileReader' },
  get training() {
    return trunk.training;
  },
  eval: () => trunk.eval(),
  train: (mode) => trunk.train(mode),
  features(images, blocks) {
    const n = images.shape[0];
    const maps = trunk.features(tiles(images).flatten(0, 1), blocks);
    return new Map([...maps].map(([block, m]) => [block, m.mean([2, 3]).view([n, 3, 3, -1]).permute([0, 3, 1, 2])]));
  },
};

const train = await resolveDataset(run.config.data, { split: 'train', size });
const test = await resolveDataset(run.config.data, { split: 'test', size });
const limit = Number(values.limit);
const recalibrate = Number(values['recalibrate-bn']);
if (recalibrate > 0) {
  const reader = values.whole ? trunk : tileReader;
  const rows = subsetIndices(train.n, Math.min(recalibrate, train.n), 1);
  const loader = evalLoader(trunk, train, {
    normalization: run.normalization,
    imageSize: size,
    indices: rows,
    batchSize: 128,
    encoderInput: run.encoderInput,
  });
  trunk.train(true);
  for await (const batch of loader.epoch(0)) {
    const images = run.encoderInput ? run.encoderInput(batch.images) : batch.images;
    noGrad(() => tidy(() => void reader.features(images, [trunk.blockNames.at(-1)])));
  }
  await loader.close();
  trunk.eval();
}
const { layers, best } = await evaluateLayers(
  {
    backbone: values.whole ? trunk : tileReader,
    train,
    test,
    pool: 'grid2',
    normalization: run.normalization,
    imageSize: size,
    trainIndices: subsetIndices(train.n, Math.min(limit, train.n), 0),
    testIndices: subsetIndices(test.n, Math.min(limit, test.n), 0),
    encoderInput: run.encoderInput,
  },
  {},
);
const reading =
  (values.whole ? `whole ${size}-px images` : `${tile}-px tiles of ${size}-px images`) +
  (recalibrate > 0 ? `, BatchNorm re-estimated on ${Math.min(recalibrate, train.n)} images` : '');
console.log(
  `${values.checkpoint} (${values.init}), ${reading}: ${layers.map((l) => `${l.block} ${l.result.top1.toFixed(2)}`).join(', ')}; best ${best}`,
);
