// The decoder that generative tasks put on an encoder (any registered backbone): it upsamples the
// encoder's last feature map back to the input size, as the decoders of Zhang et al.'s colorization
// network and Pathak et al.'s Context Encoder do (transposed convolutions with BatchNorm and ReLU).
import { nn, type Tensor } from '@pretext/torch';

export interface DecoderOptions {
  /** Channels of the encoder's feature map. */
  inChannels: number;
  /** Output channels (2 for ab, 313 for ab bins, 3 for RGB). */
  outChannels: number;
  /** Spatial size of the encoder's output and of the image to produce (square). */
  fromSize: number;
  toSize: number;
  /** Channels of the first upsampling stage; halved at each later one (default 128, at least 32). */
  width?: number;
  /** Kernel of the final projection to the outputs (default 3; 1 as colorization's per-pixel classifier). */
  projectionKernel?: 1 | 3;
}

/** Stride-2 transposed convolutions up to the target size, then a 3x3 (or 1x1) projection to the outputs. */
export class UpsamplingDecoder extends nn.Module {
  layers: nn.Sequential;

  constructor(options: DecoderOptions) {
    super();
    const { inChannels, outChannels, fromSize, toSize } = options;
    const doublings = Math.log2(toSize / fromSize);
    if (!Number.isInteger(doublings) || doublings < 0) {
      throw new RangeError(`UpsamplingDecoder: the output size ${toSize} must be the input size ${fromSize} times a power of two`);
    }
    const mods: nn.Module[] = [];
    let channels = inChannels;
    let width = options.width ?? 128;
    for (let i = 0; i < doublings; i++) {
      mods.push(
        new nn.ConvTranspose2d(channels, width, 4, { stride: 2, padding: 1, bias: false }),
        new nn.BatchNorm2d(width),
        nn.ReLU({ inplace: true }),
      );
      channels = width;
      width = Math.max(32, width >> 1);
    }
    const kernel = options.projectionKernel ?? 3;
    mods.push(new nn.Conv2d(channels, outChannels, kernel, { padding: (kernel - 1) >> 1 }));
    this.layers = new nn.Sequential(...mods);
  }

  forward(features: Tensor): Tensor {
    return this.layers.forward(features);
  }
}
