// Network-in-Network as in RotNet (Gidaris et al. 2018), with 3, 4 or 5 blocks of three conv units.
import { nn } from '@pretext/torch';
import { Backbone, convBnRelu } from './backbone.js';

export interface NinOptions {
  blocks?: 3 | 4 | 5;
  inChannels?: number;
}

export class NetworkInNetwork extends Backbone {
  readonly blockNames: string[];
  readonly blockChannels: number[];
  protected readonly blocks: nn.ModuleList;

  constructor(options: NinOptions = {}) {
    super();
    const numBlocks = options.blocks ?? 4;
    if (![3, 4, 5].includes(numBlocks)) throw new RangeError(`NetworkInNetwork: 'blocks' must be 3, 4 or 5, got ${numBlocks}`);
    const c = 192;
    const pool = { stride: 2, padding: 1 } as const;
    const stages = [
      new nn.Sequential(convBnRelu(options.inChannels ?? 3, c, 5), convBnRelu(c, 160, 1), convBnRelu(160, 96, 1), nn.MaxPool2d(3, pool)),
      new nn.Sequential(convBnRelu(96, c, 5), convBnRelu(c, c, 1), convBnRelu(c, c, 1), nn.AvgPool2d(3, pool)),
      new nn.Sequential(convBnRelu(c, c, 3), convBnRelu(c, c, 1), convBnRelu(c, c, 1), ...(numBlocks > 3 ? [nn.AvgPool2d(3, pool)] : [])),
    ];
    for (let s = 3; s < numBlocks; s++) stages.push(new nn.Sequential(convBnRelu(c, c, 3), convBnRelu(c, c, 1), convBnRelu(c, c, 1)));
    this.blocks = new nn.ModuleList(stages);
    this.blockNames = stages.map((_, i) => `block${i + 1}`);
    this.blockChannels = stages.map(() => c);
  }
}
