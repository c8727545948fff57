// Nonlinear probe: an MLP (Linear-BatchNorm-ReLU layers, as RotNet's nonlinear classifier) trained
// on frozen, standardized features.
import { manualSeed } from '@pretext/torch';
import { MlpHead } from '../models/heads.js';
import { fitClassifier, predictClasses, type FitOptions } from './fit.js';
import { standardize } from './linear.js';
import { checkTrainTest, ComputeMeter, probeResult, type EvalResult, type LabeledFeatures } from './metrics.js';

export interface MlpProbeOptions extends FitOptions {
  /** Hidden widths (default [200, 200]: RotNet's three fully connected layers). */
  hidden?: number[];
  dropout?: number;
}

export const MLP_DEFAULTS = { epochs: 30, batchSize: 128, lr: 0.1, weightDecay: 5e-4, optimizer: 'sgd', minSteps: 500 } as const;

export function mlpProbe(train: LabeledFeatures, test: LabeledFeatures, options: MlpProbeOptions = {}): EvalResult {
  checkTrainTest(train, test);
  const meter = new ComputeMeter();
  const [xTrain, xTest] = standardize(train.features, test.features);
  const hidden = options.hidden ?? [200, 200];
  manualSeed(options.seed ?? 0);
  const model = new MlpHead(xTrain.shape[1], hidden, train.classNames.length, { dropout: options.dropout });
  const { epochs, losses } = fitClassifier(model, xTrain, train.labels, { ...options, defaults: MLP_DEFAULTS });
  const predicted = predictClasses(model, xTest);
  xTrain.dispose();
  xTest.dispose();
  return probeResult('mlp', predicted, train, test, meter.read(epochs), {
    ...MLP_DEFAULTS,
    ...options,
    hidden,
    epochs,
    finalLoss: losses.at(-1),
  });
}
