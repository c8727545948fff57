// SRGAN's networks (Ledig et al., CVPR 2017): the SRResNet generator trunk (residual blocks with
// BatchNorm and PReLU, and a global skip), its sub-pixel upsampler, and the discriminator (strided
// conv blocks with LeakyReLU 0.2, then a dense head). Trunk and discriminator are Backbones, so
// the evaluation protocols probe their blocks like any encoder's.
import { nn, tensor, where, type Tensor } from '@pretext/torch';
import { Backbone } from './backbone.js';

/** PReLU with one slope per channel (dim 1): `where(x > 0, x, slope * x)`; the engine has no PReLU op. */
export function prelu(x: Tensor, weight: Tensor): Tensor {
  const slope = x.ndim > 1 ? weight.view([1, -1, ...Array<number>(x.ndim - 2).fill(1)]) : weight;
  return where(x.gt(0), x, x.mul(slope));
}

/** PReLU (He et al. 2015), one learned slope per channel, initialized to 0.25 as in PyTorch. */
export class PReLU extends nn.Module {
  weight: nn.Parameter;

  constructor(channels: number, init = 0.25) {
    super();
    this.weight = new nn.Parameter(tensor(Array<number>(channels).fill(init)));
  }

  forward(x: Tensor): Tensor {
    return prelu(x, this.weight);
  }
}

const conv3 = (inChannels: number, outChannels: number, stride = 1, bias = true) =>
  new nn.Conv2d(inChannels, outChannels, 3, { stride, padding: 1, bias });

/** conv3x3-BN-PReLU-conv3x3-BN plus the input. */
class ResidualBlock extends nn.Module {
  body: nn.Sequential;

  constructor(channels: number) {
    super();
    this.body = new nn.Sequential(
      conv3(channels, channels, 1, false),
      new nn.BatchNorm2d(channels),
      new PReLU(channels),
      conv3(channels, channels, 1, false),
      new nn.BatchNorm2d(channels),
    );
  }

  forward(x: Tensor): Tensor {
    return this.body.forward(x).add_(x);
  }
}

export interface SrResNetOptions {
  /** Residual blocks (paper: 16). */
  blocks?: number;
  /** Feature channels (paper: 64). */
  width?: number;
  /** The residual blocks are probed in this many named groups, res1..resG (default 4; must divide `blocks`). */
  groups?: number;
  inChannels?: number;
}

/**
 * The SRResNet trunk at the low-res input's size: a 9x9 conv with PReLU (stem), residual blocks in
 * named groups, then conv3x3-BN plus the stem's output (fuse, the global skip). The task puts a
 * SubPixelUpsampler on top.
 */
export class SrResNet extends Backbone {
  readonly blockNames: string[];
  readonly blockChannels: number[];
  protected readonly blocks: nn.ModuleList;

  constructor(options: SrResNetOptions = {}) {
    super();
    const { blocks = 16, width = 64, groups = 4, inChannels = 3 } = options;
    if (!Number.isInteger(blocks / groups) || blocks < 1)
      throw new RangeError(`SrResNet: 'groups' (${groups}) must divide 'blocks' (${blocks})`);
    const stem = new nn.Sequential(new nn.Conv2d(inChannels, width, 9, { padding: 4 }), new PReLU(width));
    const residual = Array.from(
      { length: groups },
      () => new nn.Sequential(...Array.from({ length: blocks / groups }, () => new ResidualBlock(width))),
    );
    const fuse = new nn.Sequential(conv3(width, width, 1, false), new nn.BatchNorm2d(width));
    this.blocks = new nn.ModuleList([stem, ...residual, fuse]);
    this.blockNames = ['stem', ...residual.map((_, g) => `res${g + 1}`), 'fuse'];
    this.blockChannels = this.blockNames.map(() => width);
  }

  protected override runBlock(i: number, input: Tensor, earlier: readonly Tensor[]): Tensor {
    const out = super.runBlock(i, input, earlier);
    return i === this.blocks.length - 1 ? out.add_(earlier[0]) : out;
  }
}

/**
 * Sub-pixel upsampling (Shi et al. 2016) as SRGAN's tail: per doubling a conv3x3 to 4x the width,
 * pixelShuffle(2) and PReLU; then a 9x9 conv to the output channels.
 */
export class SubPixelUpsampler extends nn.Module {
  layers: nn.Sequential;

  constructor(inChannels: number, outChannels: number, factor: number, width = 64) {
    super();
    const doublings = Math.log2(factor);
    if (!Number.isInteger(doublings) || doublings < 0)
      throw new RangeError(`SubPixelUpsampler: 'factor' must be a power of two, got ${factor}`);
    const mods: nn.Module[] = [];
    let channels = inChannels;
    for (let i = 0; i < doublings; i++) {
      mods.push(conv3(channels, 4 * width), nn.PixelShuffle(2), new PReLU(width));
      channels = width;
    }
    mods.push(new nn.Conv2d(channels, outChannels, 9, { padding: 4 }));
    this.layers = new nn.Sequential(...mods);
  }

  forward(features: Tensor): Tensor {
    return this.layers.forward(features);
  }
}

export interface DiscriminatorOptions {
  /** Channels of the first block; each later block doubles them (paper: 64, so 64-128-256-512). */
  width?: number;
  inChannels?: number;
}

const leaky = () => nn.LeakyReLU(0.2);

/**
 * SRGAN's discriminator trunk: four blocks of a stride-1 and a stride-2 conv3x3, each with
 * BatchNorm (not the very first) and LeakyReLU(0.2); a 32 px image leaves it 2 x 2.
 */
export class SrganDiscriminator extends Backbone {
  readonly blockNames = ['block1', 'block2', 'block3', 'block4'];
  readonly blockChannels: number[];
  protected readonly blocks: nn.ModuleList;

  constructor(options: DiscriminatorOptions = {}) {
    super();
    const width = options.width ?? 64;
    this.blockChannels = [width, width * 2, width * 4, width * 8];
    let channels = options.inChannels ?? 3;
    this.blocks = new nn.ModuleList(
      this.blockChannels.map((c, b) => {
        const first = b === 0 ? [conv3(channels, c), leaky()] : [conv3(channels, c, 1, false), new nn.BatchNorm2d(c), leaky()];
        channels = c;
        return new nn.Sequential(...first, conv3(c, c, 2, false), new nn.BatchNorm2d(c), leaky());
      }),
    );
  }

  /** Side of the last feature map for square inputs of `size` (each stride-2 conv takes ceil(size / 2)). */
  static outputSize(size: number): number {
    for (let i = 0; i < 4; i++) size = Math.ceil(size / 2);
    return size;
  }
}

/** The discriminator's dense head: flatten, Linear(1024), LeakyReLU(0.2), Linear(1) (a logit). */
export class DenseCritic extends nn.Module {
  layers: nn.Sequential;

  constructor(inChannels: number, side: number, hidden = 1024) {
    super();
    this.layers = new nn.Sequential(nn.Flatten(), new nn.Linear(inChannels * side * side, hidden), leaky(), new nn.Linear(hidden, 1));
  }

  forward(features: Tensor): Tensor {
    return this.layers.forward(features).flatten();
  }
}
