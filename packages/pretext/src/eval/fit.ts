// Minibatch training of a classifier on inputs held in memory (frozen features or feature maps),
// shared by the nonlinear and conv probes.
import { nn, noGrad, optim, tidy, type Tensor } from '@pretext/torch';
import { allRows, tensorIndex } from './metrics.js';
import { seededRandom, shuffled } from '../util/random.js';

export interface FitOptions {
  epochs?: number;
  batchSize?: number;
  /** Peak learning rate, decayed by a cosine to 0 over the run. */
  lr?: number;
  weightDecay?: number;
  optimizer?: 'sgd' | 'adam';
  seed?: number;
  log?: (line: string) => void;
}

export function makeOptimizer(
  kind: 'sgd' | 'adam',
  params: nn.Parameter[],
  lr: number,
  weightDecay: number,
): optim.Optimizer<{ lr: number }> {
  return kind === 'sgd'
    ? new optim.SGD(params, { lr, momentum: 0.9, nesterov: true, weightDecay })
    : new optim.Adam(params, { lr, weightDecay });
}

/** A protocol's defaults; without an explicit `epochs`, small training sets get at least `minSteps` steps. */
export type FitDefaults = Required<Omit<FitOptions, 'log' | 'seed'>> & { minSteps: number };

/** Trains `model` (inputs -> logits) with cross entropy; returns the epochs run and each epoch's mean loss. */
export function fitClassifier(
  model: nn.Module,
  inputs: Tensor,
  labels: Int32Array,
  options: FitOptions & { defaults: FitDefaults },
): { epochs: number; losses: number[] } {
  const { batchSize, lr, weightDecay, optimizer } = { ...options.defaults, ...stripUndefined(options) };
  const n = labels.length;
  const size = Math.min(batchSize, n);
  const stepsPerEpoch = Math.floor(n / size);
  const epochs = options.epochs ?? Math.max(options.defaults.epochs, Math.ceil(options.defaults.minSteps / stepsPerEpoch));
  const opt = makeOptimizer(optimizer, model.parameters(), lr, weightDecay);
  const schedule = new optim.CosineWithWarmup(opt, { warmupSteps: 0, totalSteps: Math.max(1, epochs * stepsPerEpoch) });
  const random = seededRandom(options.seed ?? 0);
  const all = allRows(n);
  const losses: number[] = [];
  // Labels as one int64 tensor; each minibatch takes its inputs and targets with the same index.
  const targetsAll = tensorIndex(labels);
  model.train();
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      const order = shuffled(all, random);
      let total = 0;
      for (let s = 0; s < stepsPerEpoch; s++) {
        total += tidy(() => {
          const idx = tensorIndex(order.subarray(s * size, (s + 1) * size));
          opt.zeroGrad();
          const loss = nn.functional.crossEntropy(model.forward(inputs.indexSelect(0, idx)), targetsAll.indexSelect(0, idx));
          loss.backward();
          opt.step();
          schedule.step();
          return loss.item();
        });
      }
      losses.push(total / stepsPerEpoch);
      options.log?.(`  epoch ${epoch + 1}/${epochs}  loss ${losses.at(-1)!.toFixed(4)}`);
    }
  } finally {
    targetsAll.dispose();
  }
  model.eval();
  return { epochs, losses };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Argmax class of each input row, in eval mode without grad, in batches. */
export function predictClasses(model: nn.Module, inputs: Tensor, batchSize = 512): Int32Array {
  const out = new Int32Array(inputs.shape[0]);
  const wasTraining = model.training;
  model.eval();
  for (let start = 0; start < out.length; start += batchSize) {
    const rows = Math.min(batchSize, out.length - start);
    out.set(
      noGrad(() =>
        tidy(() =>
          model
            .forward(inputs.narrow(0, start, rows))
            .argmax(1)
            .toArray(),
        ),
      ),
      start,
    );
  }
  model.train(wasTraining);
  return out;
}
