// A small AlexNet-style trunk for patch tasks (jigsaw tiles, context patches): five conv layers,
// two max-pools, as the siamese trunks of Noroozi & Favaro and Doersch et al., scaled to small patches.
import { nn } from '@pretext/torch';
import { Backbone, convBnRelu } from './backbone.js';

export interface AlexNetOptions {
  /** Channels of the first conv; later layers use 2x, 3x, 3x, 2x. */
  width?: number;
  inChannels?: number;
}

export class SmallAlexNet extends Backbone {
  readonly blockNames = ['conv1', 'conv2', 'conv3', 'conv4', 'conv5'];
  readonly blockChannels: number[];
  protected readonly blocks: nn.ModuleList;

  constructor(options: AlexNetOptions = {}) {
    super();
    const w = options.width ?? 64;
    const c = [w, w * 2, w * 3, w * 3, w * 2];
    const pool = () => nn.MaxPool2d(3, { stride: 2, padding: 1 });
    this.blocks = new nn.ModuleList([
      new nn.Sequential(convBnRelu(options.inChannels ?? 3, c[0], 5), pool()),
      new nn.Sequential(convBnRelu(c[0], c[1], 3), pool()),
      convBnRelu(c[1], c[2], 3),
      convBnRelu(c[2], c[3], 3),
      convBnRelu(c[3], c[4], 3),
    ]);
    this.blockChannels = c;
  }
}
