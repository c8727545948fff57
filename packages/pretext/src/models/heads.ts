// Heads that tasks put on top of a backbone.
import { nn, type Tensor } from '@pretext/torch';

/** Global average pooling then a linear classifier, as RotNet's NIN head. */
export class PooledClassifier extends nn.Module {
  fc: nn.Linear;

  constructor(inChannels: number, classes: number) {
    super();
    this.fc = new nn.Linear(inChannels, classes);
  }

  forward(features: Tensor): Tensor {
    return this.fc.forward(features.mean([2, 3]));
  }
}

/** Linear -> BatchNorm1d -> ReLU, repeated, then a linear output: the FC stacks of siamese heads. */
export class MlpHead extends nn.Module {
  layers: nn.Sequential;

  constructor(inFeatures: number, hidden: number[], outFeatures: number, options: { dropout?: number } = {}) {
    super();
    const mods: nn.Module[] = [];
    let width = inFeatures;
    for (const h of hidden) {
      mods.push(new nn.Linear(width, h), new nn.BatchNorm1d(h), nn.ReLU({ inplace: true }));
      if (options.dropout) mods.push(new nn.Dropout(options.dropout));
      width = h;
    }
    mods.push(new nn.Linear(width, outFeatures));
    this.layers = new nn.Sequential(...mods);
  }

  forward(x: Tensor): Tensor {
    return this.layers.forward(x);
  }
}
