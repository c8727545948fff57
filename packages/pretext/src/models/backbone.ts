// The backbone contract: named blocks run in order, with features readable at any block.
import { nn, type Tensor } from '@pretext/torch';

export abstract class Backbone extends nn.Module {
  /** Block names in order, e.g. ['block1', 'block2', ...]. */
  abstract readonly blockNames: readonly string[];
  /** Output channels of each block. */
  abstract readonly blockChannels: readonly number[];
  protected abstract readonly blocks: nn.ModuleList;

  /** Channels of the input (its first convolution's). */
  get inChannels(): number {
    const conv = this.parameters().find((p) => p.ndim === 4);
    if (!conv) throw new Error(`${this.constructor.name} has no convolution to read its input channels from`);
    return conv.shape[1];
  }

  get outChannels(): number {
    return this.blockChannels[this.blockChannels.length - 1];
  }

  channelsAt(block: string): number {
    return this.blockChannels[this.indexOf(block)];
  }

  indexOf(block: string): number {
    const i = this.blockNames.indexOf(block);
    if (i < 0) throw new Error(`${this.constructor.name}: no block named '${block}'; blocks are ${this.blockNames.join(', ')}`);
    return i;
  }

  /** Runs every block and returns the last feature map (N x C x H x W). */
  forward(x: Tensor): Tensor {
    return this.forwardTo(x, this.blockNames[this.blockNames.length - 1]);
  }

  /** Runs blocks up to and including `block`. */
  forwardTo(x: Tensor, block: string): Tensor {
    return this.features(x, [block]).get(block)!;
  }

  /** Block i on the previous block's output; `earlier` holds blocks 0..i-1's outputs, for long skips (SRResNet). */
  protected runBlock(i: number, input: Tensor, _earlier: readonly Tensor[]): Tensor {
    return this.blocks[i].forward(input);
  }

  /** Feature maps at each named block, computing only as far as needed. */
  features(x: Tensor, blocks: readonly string[]): Map<string, Tensor> {
    const wanted = new Set(blocks.map((b) => this.indexOf(b)));
    const last = Math.max(...wanted);
    const out = new Map<string, Tensor>();
    const outputs: Tensor[] = [];
    let h = x;
    for (let i = 0; i <= last; i++) {
      outputs.push((h = this.runBlock(i, h, outputs)));
      if (wanted.has(i)) out.set(this.blockNames[i], h);
    }
    return out;
  }
}

/** Conv (no bias) + BatchNorm + ReLU, the unit most of these nets are built from. */
export function convBnRelu(inChannels: number, outChannels: number, kernel: number, stride = 1): nn.Sequential {
  return new nn.Sequential(
    new nn.Conv2d(inChannels, outChannels, kernel, { stride, padding: (kernel - 1) >> 1, bias: false }),
    new nn.BatchNorm2d(outChannels),
    nn.ReLU({ inplace: true }),
  );
}
