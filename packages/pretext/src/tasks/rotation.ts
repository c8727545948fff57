// RotNet (Gidaris, Singh & Komodakis, ICLR 2018): predict which rotation was applied to an image.
// All rotations of every image go into the same batch, as in the paper.
import { arange, cat, Generator, nn, tensor, type Tensor } from '@pretext/torch';
import { z } from 'zod';
import type { Batch } from '../data/loader.js';
import { PooledClassifier } from '../models/heads.js';
import type { Backbone } from '../models/backbone.js';
import { answerMark, ClassifierTask, type PretextBatch, type PretextTask } from './task.js';

const options = z
  .object({
    /** 4 (0/90/180/270 degrees, the paper's choice), 2 (0/180) or 8 (multiples of 45 degrees). */
    rotations: z.union([z.literal(2), z.literal(4), z.literal(8)]).default(4),
  })
  .strict();

/** Angles in degrees for each class. */
export function rotationAngles(rotations: 2 | 4 | 8): number[] {
  return Array.from({ length: rotations }, (_, k) => (k * 360) / rotations);
}

/** Rotates a batch counter-clockwise by `degrees`: exact for multiples of 90, bilinear otherwise. */
export function rotate(images: Tensor, degrees: number): Tensor {
  if (degrees % 90 === 0) return images.rot90(degrees / 90, [2, 3]);
  const rad = (degrees * Math.PI) / 180;
  const [n, c, h, w] = images.shape;
  // affine_grid maps output to input coordinates, so the inverse rotation goes in theta.
  const theta = tensor([
    [Math.cos(rad), Math.sin(rad), 0],
    [-Math.sin(rad), Math.cos(rad), 0],
  ])
    .unsqueeze(0)
    .expand([n, 2, 3]);
  const grid = nn.functional.affineGrid(theta, [n, c, h, w], false);
  return nn.functional.gridSample(images, grid, { mode: 'bilinear', paddingMode: 'zeros', alignCorners: false });
}

class RotationModel extends ClassifierTask<PooledClassifier> {
  private readonly angles: number[];

  constructor(backbone: Backbone, rotations: 2 | 4 | 8) {
    super(backbone, new PooledClassifier(backbone.outChannels, rotations));
    this.angles = rotationAngles(rotations);
  }

  prepare(batch: Batch, _generator: Generator): PretextBatch {
    const n = batch.images.shape[0];
    const inputs = cat(this.angles.map((a) => rotate(batch.images, a)));
    const targets = arange(0, this.angles.length, 1, 'int64').repeatInterleave(n);
    return { inputs, targets, extra: { angles: tensor(this.angles) } };
  }

  logits(inputs: Tensor): Tensor {
    return this.modules.head.forward(this.modules.backbone.forward(inputs));
  }
}

export const rotationTask: PretextTask<typeof options> = {
  name: 'rotation',
  description: 'RotNet: predict the rotation (0/90/180/270 degrees) applied to an image',
  paper: 'Gidaris, Singh & Komodakis, Unsupervised Representation Learning by Predicting Image Rotations, ICLR 2018',
  options,
  // The paper's CIFAR-10 recipe: NIN-4, SGD with Nesterov momentum, lr 0.1 dropped 5x at 30, 60, 80 of 100 epochs.
  defaults: {
    backbone: 'nin4',
    epochs: 100,
    batchSize: 128,
    optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4 },
    schedule: { name: 'multistep', milestones: [30, 60, 80], gamma: 0.2 },
  },
  create: (backbone, o) => new RotationModel(backbone, o.rotations),
  picture(batch, answers, display) {
    const angles = batch.extra!.angles.toArray();
    const targets = batch.targets.toArray();
    return {
      panels: display(batch.inputs),
      captions: targets.map((t, i) => `${angles[t]}°${answerMark(answers?.[i], (k) => `${angles[k]}°`)}`),
      columns: targets.length / angles.length,
    };
  },
};
