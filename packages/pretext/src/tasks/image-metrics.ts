// Image quality measures that the generative tasks report: PSNR and SSIM; and the GAN loss.
import { arange, cat, nn, onesLike, zerosLike, type Tensor } from '@pretext/torch';

/** PSNR in dB of mean squared errors of values that span `dataRange`. */
export function psnrOfMse(mse: Tensor, dataRange = 1): Tensor {
  return mse
    .clamp(1e-10)
    .log()
    .mul(-10 / Math.LN10)
    .add(20 * Math.log10(dataRange));
}

/** Per-sample PSNR in dB of N x C x H x W images whose values span `dataRange` (1 for [0, 1]). */
export function psnrPerSample(prediction: Tensor, target: Tensor, dataRange = 1): Tensor {
  return psnrOfMse(prediction.sub(target).square().flatten(1).mean([1]), dataRange);
}

/** Mean over the batch of the per-sample PSNR (dB). */
export function psnr(prediction: Tensor, target: Tensor, dataRange = 1): Tensor {
  return psnrPerSample(prediction, target, dataRange).mean();
}

export interface SsimOptions {
  /** Span of the values (1 for [0, 1]). */
  dataRange?: number;
  /** Side of the square window (default 11). */
  windowSize?: number;
  /** Sigma of the Gaussian window (default 1.5), or 'uniform' for equal weights. */
  sigma?: number | 'uniform';
}

/** Normalized 1-d window weights. */
function ssimWindow(size: number, sigma: number | 'uniform'): Tensor {
  const offsets = arange(0, size, 1, 'float32').sub((size - 1) / 2);
  const weights =
    sigma === 'uniform'
      ? onesLike(offsets)
      : offsets
          .square()
          .div(-2 * sigma * sigma)
          .exp();
  return weights.div(weights.sum());
}

/**
 * Per-sample SSIM (Wang et al. 2004) of N x C x H x W images: local means, variances and covariance
 * under the window (valid positions only), K1 = 0.01 and K2 = 0.03, averaged over positions and
 * channels. The five local moments of all samples come from one separable depthwise convolution.
 */
export function ssimPerSample(prediction: Tensor, target: Tensor, options: SsimOptions = {}): Tensor {
  const { dataRange = 1, windowSize = 11, sigma = 1.5 } = options;
  const [n, c, h, w] = prediction.shape;
  if (h < windowSize || w < windowSize) throw new RangeError(`ssim: ${h} x ${w} images are smaller than the ${windowSize} px window`);
  const x = prediction.reshape([n * c, 1, h, w]);
  const y = target.reshape([n * c, 1, h, w]);
  const window = ssimWindow(windowSize, sigma);
  const along = (shape: number[]) =>
    window
      .view(shape)
      .expand([5, ...shape.slice(1)])
      .contiguous();
  const moments = cat([x, y, x.square(), y.square(), x.mul(y)], 1);
  const rows = nn.functional.conv2d(moments, along([1, 1, 1, windowSize]), null, { groups: 5 });
  const [muX, muY, xx, yy, xy] = nn.functional.conv2d(rows, along([1, 1, windowSize, 1]), null, { groups: 5 }).unbind(1);
  const c1 = (0.01 * dataRange) ** 2;
  const c2 = (0.03 * dataRange) ** 2;
  const muXY = muX.mul(muY);
  const muXX = muX.square();
  const muYY = muY.square();
  const numerator = muXY.mul(2).add(c1).mul(xy.sub(muXY).mul(2).add(c2));
  const denominator = muXX.add(muYY).add(c1).mul(xx.sub(muXX).add(yy).sub(muYY).add(c2));
  return numerator.div(denominator).view([n, -1]).mean([1]);
}

/** Mean over the batch of the per-sample SSIM. */
export function ssim(prediction: Tensor, target: Tensor, options: SsimOptions = {}): Tensor {
  return ssimPerSample(prediction, target, options).mean();
}

/** The non-saturating GAN loss: binary cross-entropy of discriminator logits against all-real or all-fake. */
export function adversarialLoss(logits: Tensor, real: boolean): Tensor {
  return nn.functional.bceWithLogits(logits, real ? onesLike(logits) : zerosLike(logits));
}
