// Context prediction (Doersch, Gupta & Efros, ICCV 2015): given a center patch and one of its eight
// neighbours (with a gap between them and random jitter), predict where the neighbour lies.
// A siamese trunk embeds both patches; an MLP over the two embeddings classifies the position.
import { full, randint, stack, tensor, type Generator, type Tensor } from '@pretext/torch';
import { z } from 'zod';
import type { Batch } from '../data/loader.js';
import type { Backbone } from '../models/backbone.js';
import {
  dropColors,
  extractPatches,
  projectOutGreenMagenta,
  imagesAt,
  PATCH_TASK_DEFAULTS,
  SiameseHead,
  SiamesePatchModel,
} from './patches.js';
import { answerMark, type PretextBatch, type PretextTask } from './task.js';

/** Neighbour offsets in grid cells (row, column) for labels 0..7, in reading order. */
export const NEIGHBOURS = [
  [-1, -1],
  [-1, 0],
  [-1, 1],
  [0, -1],
  [0, 1],
  [1, -1],
  [1, 0],
  [1, 1],
] as const;
export const POSITION_NAMES = ['top-left', 'top', 'top-right', 'left', 'right', 'bottom-left', 'bottom', 'bottom-right'];

const options = z
  .object({
    /** Against chromatic aberration: 'drop' keeps one random channel per patch (the paper's choice), 'project' removes green-magenta. */
    colorHandling: z.enum(['drop', 'project', 'none']).default('drop'),
    /** Noise std of dropped channels relative to the kept channel's std (paper: 1/100). */
    dropNoise: z.number().min(0).default(0.01),
    /** Patch side, gap between patches and jitter; defaults scale the paper's 96 / 48 / 7 px to the image. */
    patchSize: z.number().int().min(4).optional(),
    gap: z.number().int().min(0).optional(),
    jitter: z.number().int().min(0).optional(),
    /** Units of the shared per-patch fc6 (paper: 4096). */
    patchFeatures: z.number().int().positive().default(256),
    /** Units of fc7 over both patches (paper: 4096). */
    hidden: z.number().int().positive().default(512),
  })
  .strict();

type ContextOptions = z.infer<typeof options>;

export interface ContextGeometry {
  imageSize: number;
  patch: number;
  gap: number;
  jitter: number;
  /** Side of the 3x3 arrangement: 3 patches and 2 gaps. */
  span: number;
}

/** The paper's 3x3 arrangement of 96-px patches, 48-px gaps and ±7-px jitter spans 398 px. */
const PAPER_SPAN = 3 * 96 + 2 * 48 + 2 * 7;

export function contextGeometry(imageSize: number, o: Partial<Pick<ContextOptions, 'patchSize' | 'gap' | 'jitter'>> = {}): ContextGeometry {
  const scale = imageSize / PAPER_SPAN;
  const patch = o.patchSize ?? Math.floor(96 * scale);
  const gap = o.gap ?? Math.floor(48 * scale);
  const jitter = o.jitter ?? Math.floor(7 * scale);
  const span = 3 * patch + 2 * gap;
  if (patch < 1 || span + 2 * jitter > imageSize) {
    throw new RangeError(
      `context: 3 patches of ${patch} px, 2 gaps of ${gap} px and ±${jitter} px of jitter need ${span + 2 * jitter} px, the image has ${imageSize}`,
    );
  }
  return { imageSize, patch, gap, jitter, span };
}

/** Corners N x 2 (center, neighbour) of the pair for each label: the grid at a random place, each patch jittered. */
export function pairOffsets(labels: Tensor, g: ContextGeometry, generator: Generator): { y: Tensor; x: Tensor } {
  const n = labels.shape[0];
  const stride = g.patch + g.gap;
  const corner = (axis: 0 | 1) => {
    const origin = randint(g.jitter, g.imageSize - g.span - g.jitter + 1, [n, 1], generator);
    const cells = stack([full([n], 1, 'int64'), tensor(NEIGHBOURS.map((d) => d[axis] + 1)).index(labels)], 1);
    return origin.add(cells.mul(stride)).add(randint(-g.jitter, g.jitter + 1, [n, 2], generator));
  };
  return { y: corner(0), x: corner(1) };
}

class ContextModel extends SiamesePatchModel {
  constructor(
    backbone: Backbone,
    private readonly o: ContextOptions,
    private readonly geometry: ContextGeometry,
  ) {
    super(backbone, new SiameseHead(backbone.outChannels, 2, o.patchFeatures, [o.hidden], NEIGHBOURS.length));
  }

  prepare(batch: Batch, generator: Generator): PretextBatch {
    const images = imagesAt(batch, this.geometry.imageSize);
    const [n, c] = images.shape;
    const targets = randint(0, NEIGHBOURS.length, [n], generator);
    const patches = extractPatches(images, pairOffsets(targets, this.geometry, generator), this.geometry.patch);
    if (c !== 3 || this.o.colorHandling === 'none') return { inputs: patches, targets };
    if (this.o.colorHandling === 'project') return { inputs: projectOutGreenMagenta(patches), targets };
    return { inputs: dropColors(patches, generator, this.o.dropNoise).patches, targets };
  }
}

export const contextTask: PretextTask<typeof options> = {
  name: 'context',
  description: 'Context prediction: where is the second patch relative to the center patch (8 positions)',
  paper: 'Doersch, Gupta & Efros, Unsupervised Visual Representation Learning by Context Prediction, ICCV 2015',
  options,
  defaults: PATCH_TASK_DEFAULTS,
  create: (backbone, o, context) => new ContextModel(backbone, o, contextGeometry(context.imageSize, o)),
  picture(batch, answers, display) {
    const [n, t, c, p] = batch.inputs.shape;
    const targets = batch.targets.toArray();
    return {
      panels: display(batch.inputs.reshape([n * t, c, p, p])),
      captions: targets.flatMap((target, i) => [
        'center',
        `${POSITION_NAMES[target]}${answerMark(answers?.[i], (k) => POSITION_NAMES[k])}`,
      ]),
      // Four pairs a row.
      columns: 4 * t,
    };
  },
};
