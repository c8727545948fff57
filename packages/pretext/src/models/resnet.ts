// ResNet for CIFAR-sized inputs (He et al. 2016): a 3x3 stem, no max-pool, four stages of basic blocks.
import { nn, type Tensor } from '@pretext/torch';
import { Backbone } from './backbone.js';

class BasicBlock extends nn.Module {
  conv1: nn.Conv2d;
  bn1: nn.BatchNorm2d;
  conv2: nn.Conv2d;
  bn2: nn.BatchNorm2d;
  shortcut: nn.Sequential | undefined;

  constructor(inChannels: number, outChannels: number, stride: number) {
    super();
    this.conv1 = new nn.Conv2d(inChannels, outChannels, 3, { stride, padding: 1, bias: false });
    this.bn1 = new nn.BatchNorm2d(outChannels);
    this.conv2 = new nn.Conv2d(outChannels, outChannels, 3, { padding: 1, bias: false });
    this.bn2 = new nn.BatchNorm2d(outChannels);
    if (stride !== 1 || inChannels !== outChannels) {
      this.shortcut = new nn.Sequential(
        new nn.Conv2d(inChannels, outChannels, 1, { stride, bias: false }),
        new nn.BatchNorm2d(outChannels),
      );
    }
  }

  forward(x: Tensor): Tensor {
    // In place where autograd keeps nothing (BatchNorm and add outputs), as torchvision's ResNet.
    const out = this.bn2.forward(this.conv2.forward(this.bn1.forward(this.conv1.forward(x)).relu_()));
    return out.add_(this.shortcut ? this.shortcut.forward(x) : x).relu_();
  }
}

export interface ResNetOptions {
  /** 18 or 34 (basic blocks). */
  depth?: 18 | 34;
  /** Channels of the first stage; ResNet-18 uses 64, stages double it. */
  width?: number;
  inChannels?: number;
}

const stageDepths = { 18: [2, 2, 2, 2], 34: [3, 4, 6, 3] } as const;

export class CifarResNet extends Backbone {
  readonly blockNames = ['stem', 'layer1', 'layer2', 'layer3', 'layer4'];
  readonly blockChannels: number[];
  protected readonly blocks: nn.ModuleList;

  constructor(options: ResNetOptions = {}) {
    super();
    const depth = options.depth ?? 18;
    const depths = stageDepths[depth];
    if (!depths) throw new RangeError(`CifarResNet: 'depth' must be 18 or 34, got ${depth}`);
    const width = options.width ?? 64;
    if (!Number.isInteger(width) || width < 1) throw new RangeError(`CifarResNet: 'width' must be a positive integer, got ${width}`);
    const widths = [width, width * 2, width * 4, width * 8];
    const stem = new nn.Sequential(
      new nn.Conv2d(options.inChannels ?? 3, width, 3, { padding: 1, bias: false }),
      new nn.BatchNorm2d(width),
      nn.ReLU({ inplace: true }),
    );
    const stages: nn.Module[] = [stem];
    let inC = width;
    widths.forEach((w, s) => {
      const units = Array.from({ length: depths[s] }, (_, i) => {
        const unit = new BasicBlock(inC, w, i === 0 && s > 0 ? 2 : 1);
        inC = w;
        return unit;
      });
      stages.push(new nn.Sequential(...units));
    });
    this.blocks = new nn.ModuleList(stages);
    this.blockChannels = [width, ...widths];
  }
}
