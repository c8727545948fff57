// Jigsaw puzzles (Noroozi & Favaro, ECCV 2016): cut the image into a 3x3 grid, shuffle the nine
// tiles by one of a fixed set of permutations, and predict which permutation it was. The model is
// the paper's context-free network: one shared trunk per tile, features joined only at fc7.
import { arange, cat, keep, nn, randint, tensor, type Generator, type Tensor } from '@pretext/torch';
import { z } from 'zod';
import type { Batch } from '../data/loader.js';
import type { Backbone } from '../models/backbone.js';
import { PERMUTATION_COUNT, permutationSet, TILES } from './permutations.js';
import {
  extractPatches,
  imagesAt,
  jitterChannels,
  normalizePatches,
  randomGrayscale,
  rescalePatches,
  PATCH_TASK_DEFAULTS,
  SiameseHead,
  SiamesePatchModel,
} from './patches.js';
import { answerMark, type PretextBatch, type PretextTask } from './task.js';

const GRID = 3;

const options = z
  .object({
    /** Size of the permutation set, i.e. the number of classes (the paper's best: 1000; 100 here). */
    permutations: z.number().int().min(2).max(PERMUTATION_COUNT).default(100),
    /** 'maxavg' is the paper's Algorithm 1; 'maxmin' maximizes the distance to the nearest chosen permutation. */
    variant: z.enum(['maxavg', 'maxmin']).default('maxavg'),
    permutationSeed: z.number().int().nonnegative().default(0),
    /** Tile side; default the paper's 64/75 of a grid cell (18 px in 21-px cells at 64x64). */
    tileSize: z.number().int().min(4).optional(),
    /** Each colour channel of each tile shifted by up to this many pixels (paper: ±2 of 64-px tiles). */
    channelJitter: z.number().int().min(0).default(1),
    /** Fraction of images whose tiles are made gray (paper: 30%). */
    grayscaleProbability: z.number().min(0).max(1).default(0.3),
    /** Units of the shared per-tile fc6 (paper: 512). */
    tileFeatures: z.number().int().positive().default(256),
    /** Units of fc7 over the 9 concatenated tiles (paper: 4096). */
    hidden: z.number().int().positive().default(1024),
  })
  .strict();

type JigsawOptions = z.infer<typeof options>;

/** A 3x3 grid of cells centred in the image, with a smaller tile placed at random in each cell. */
export interface JigsawGeometry {
  imageSize: number;
  cell: number;
  tile: number;
  /** Top-left of the grid (the image may be a few pixels larger than 3 cells). */
  origin: number;
}

export function jigsawGeometry(imageSize: number, tileSize?: number): JigsawGeometry {
  const cell = Math.floor(imageSize / GRID);
  const tile = tileSize ?? Math.round((cell * 64) / 75);
  if (tile > cell || tile < 1)
    throw new RangeError(`jigsaw: tileSize ${tile} must be at most the grid cell (${cell} px of a ${imageSize}-px image)`);
  return { imageSize, cell, tile, origin: Math.floor((imageSize - GRID * cell) / 2) };
}

/** Tile corners N x 9 in reading order: each tile at a random place inside its cell. */
export function tileOffsets(n: number, g: JigsawGeometry, generator: Generator): { y: Tensor; x: Tensor } {
  const starts = arange(0, GRID, 1, 'int64').mul(g.cell).add(g.origin);
  const room = g.cell - g.tile + 1;
  return {
    y: starts
      .repeatInterleave(GRID)
      .view([1, TILES])
      .add(randint(0, room, [n, TILES], generator)),
    x: starts
      .repeat(GRID)
      .view([1, TILES])
      .add(randint(0, room, [n, TILES], generator)),
  };
}

const expandOrder = (order: Tensor, tiles: Tensor) => order.view([...order.shape, 1, 1, 1]).expand(tiles.shape);

/** Puts tile order[n][i] at position i. */
export function shuffleTiles(tiles: Tensor, order: Tensor): Tensor {
  return tiles.gather(1, expandOrder(order, tiles));
}

/** Undoes shuffleTiles: every tile back at its own cell. */
export function solveTiles(shuffled: Tensor, order: Tensor): Tensor {
  return shuffled.gather(1, expandOrder(order.argsort(1), shuffled));
}

/** Nine tiles N x 9 x C x P x P in reading order as images N x C x 3P x 3P. */
export function assembleTiles(tiles: Tensor): Tensor {
  const [n, , c, p] = tiles.shape;
  return tiles
    .reshape([n, GRID, GRID, c, p, p])
    .permute([0, 3, 1, 4, 2, 5])
    .reshape([n, c, GRID * p, GRID * p]);
}

class JigsawModel extends SiamesePatchModel {
  /** The permutation set, K x 9 int64. */
  private readonly permutations: Tensor;

  constructor(
    backbone: Backbone,
    private readonly o: JigsawOptions,
    private readonly geometry: JigsawGeometry,
  ) {
    super(backbone, new SiameseHead(backbone.outChannels, TILES, o.tileFeatures, [o.hidden], o.permutations));
    const set = permutationSet({ count: o.permutations, variant: o.variant, seed: o.permutationSeed });
    this.permutations = keep(tensor(set.permutations));
  }

  prepare(batch: Batch, generator: Generator): PretextBatch {
    const g = this.geometry;
    const images = imagesAt(batch, g.imageSize);
    const [n, c] = images.shape;
    let { y, x } = tileOffsets(n, g, generator);
    if (c > 1 && this.o.channelJitter > 0) {
      const max = g.imageSize - g.tile;
      y = jitterChannels(y, c, this.o.channelJitter, max, generator);
      x = jitterChannels(x, c, this.o.channelJitter, max, generator);
    }
    const tiles = normalizePatches(randomGrayscale(extractPatches(images, { y, x }, g.tile), this.o.grayscaleProbability, generator));
    const targets = randint(0, this.o.permutations, [n], generator);
    const order = this.permutations.index(targets);
    return { inputs: shuffleTiles(tiles, order), targets, extra: { order } };
  }
}

export const jigsawTask: PretextTask<typeof options> = {
  name: 'jigsaw',
  description: 'Jigsaw: predict which permutation shuffled the nine tiles of a 3x3 grid',
  paper: 'Noroozi & Favaro, Unsupervised Learning of Visual Representations by Solving Jigsaw Puzzles, ECCV 2016',
  options,
  defaults: PATCH_TASK_DEFAULTS,
  create: (backbone, o, context) => new JigsawModel(backbone, o, jigsawGeometry(context.imageSize, o.tileSize)),
  picture(batch, answers) {
    const order = batch.extra!.order;
    const shuffled = rescalePatches(batch.inputs);
    const [n, t, c, p] = shuffled.shape;
    const side = GRID * p;
    const tiles = nn.functional
      .interpolate(shuffled.reshape([n * t, c, p, p]), { size: side, mode: 'nearest' })
      .reshape([n, t, c, side, side]);
    const solved = assembleTiles(solveTiles(shuffled, order)).unsqueeze(1);
    const targets = batch.targets.toArray();
    const cells = order.toArray();
    return {
      panels: cat([tiles, solved], 1).reshape([n * (t + 1), c, side, side]),
      captions: targets.flatMap((target, i) => [
        // Each tile captioned with the cell it came from.
        ...Array.from({ length: t }, (_, k) => `cell ${cells[i * t + k] + 1}`),
        `#${target}${answerMark(answers?.[i], (k) => `#${k}`)}`,
      ]),
      columns: t + 1,
    };
  },
};
