import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '@pretext/torch';
import type { Tensor } from '@pretext/torch';
import {
  adjustBrightness,
  adjustContrast,
  adjustHue,
  adjustSaturation,
  augmentBatch,
  colorJitter,
  gaussianBlur,
  horizontalFlip,
  luminance,
  normalizeImages,
  parseAugmentSpec,
  prepareImages,
  randomCropBoxes,
  randomGrayscale,
  randomResizedCrop,
  resizedCrops,
  toFloatImages,
} from '../../src/data/augment.js';

torch.setNumThreads(1);

/** A float batch in [0, 1] with distinct values everywhere. */
const randomBatch = (shape: number[], seed = 1): Tensor => torch.rand(shape, new torch.Generator(seed));

function assertClose(actual: Tensor, expected: Tensor, tolerance: number, what: string): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const diff = actual.sub(expected).abs().max().item();
  assert.ok(diff <= tolerance, `${what}: max difference ${diff} > ${tolerance}`);
}

const gen = (seed = 7) => new torch.Generator(seed);

test('uint8 batches become float in [0, 1]; float batches pass through', () => {
  torch.tidy(() => {
    const bytes = torch.tensor([0, 51, 255], { dtype: 'uint8' }).view([1, 3, 1, 1]);
    assert.deepEqual(toFloatImages(bytes).toArray(), [0, Math.fround(0.2), 1]);
    assert.equal(toFloatImages(bytes).dtype, 'float32');
    const floats = randomBatch([2, 3, 4, 4]);
    assert.ok(toFloatImages(floats).equal(floats));
    assert.throws(() => toFloatImages(torch.zeros([3, 4, 4])), /N x C x H x W/);
  });
});

test('horizontal flip: p = 1 is torch flip, p = 0 the identity, and otherwise per sample', () => {
  torch.tidy(() => {
    const x = randomBatch([16, 3, 5, 6]);
    assert.ok(horizontalFlip(x, gen(), 1).equal(x.flip(3)));
    assert.ok(horizontalFlip(x, gen(), 0).equal(x));
    const mixed = horizontalFlip(x, gen(), 0.5);
    const flipped = x.flip(3);
    let count = 0;
    for (let i = 0; i < 16; i++) {
      const isFlipped = mixed.select(0, i).equal(flipped.select(0, i));
      assert.ok(isFlipped || mixed.select(0, i).equal(x.select(0, i)), `sample ${i} is neither original nor flipped`);
      count += isFlipped ? 1 : 0;
    }
    assert.ok(count > 0 && count < 16, `${count} of 16 flipped`);
  });
});

test('grayscale: p = 1 gives 0.299 R + 0.587 G + 0.114 B in every channel; 1-channel batches are unchanged', () => {
  torch.tidy(() => {
    const x = randomBatch([4, 3, 3, 3]);
    const gray = randomGrayscale(x, gen(), 1);
    const values = x.toArray();
    const out = gray.toArray();
    for (let s = 0; s < 4; s++) {
      for (let p = 0; p < 9; p++) {
        const at = (c: number) => s * 27 + c * 9 + p;
        const expected = 0.299 * values[at(0)] + 0.587 * values[at(1)] + 0.114 * values[at(2)];
        for (let c = 0; c < 3; c++) assert.ok(Math.abs(out[at(c)] - expected) < 1e-6);
      }
    }
    assertClose(luminance(x), gray.narrow(1, 0, 1), 1e-6, 'luminance');
    assert.ok(randomGrayscale(x, gen(), 0).equal(x));
    const mono = randomBatch([2, 1, 4, 4]);
    assert.ok(randomGrayscale(mono, gen(), 1).equal(mono));
  });
});

test('random resized crop with scale [1, 1] and ratio [1, 1] is the identity; a known box is copied exactly', () => {
  torch.tidy(() => {
    const x = randomBatch([8, 3, 12, 12]);
    assertClose(randomResizedCrop(x, gen(), { scale: [1, 1], ratio: [1, 1] }), x, 1e-5, 'full crop');
    // The top-left 6 x 4 box at its own size is a plain slice.
    const boxes = new Int32Array(Array.from({ length: 8 }, () => [2, 3, 6, 4]).flat());
    assertClose(resizedCrops(x, boxes, [6, 4]), x.narrow(2, 2, 6).narrow(3, 3, 4), 1e-5, 'box copy');
    // Mirroring folded into the crop equals flipping the crop.
    const mirror = new Uint8Array(8).fill(1);
    assertClose(resizedCrops(x, boxes, [6, 4], mirror), x.narrow(2, 2, 6).narrow(3, 3, 4).flip(3), 1e-5, 'mirrored box');
    // Output size and range.
    const out = randomResizedCrop(x, gen(), { scale: [0.2, 1], size: 20 });
    assert.deepEqual(out.shape, [8, 3, 20, 20]);
    assert.ok(out.min().item() >= 0 && out.max().item() <= 1);
  });
});

test('crop boxes follow torchvision: inside the image, area within scale, aspect within ratio', () => {
  const [h, w] = [40, 30];
  const boxes = randomCropBoxes(gen(), 500, h, w, [0.2, 0.9], [0.5, 2]);
  for (let s = 0; s < 500; s++) {
    const [top, left, bh, bw] = boxes.subarray(s * 4, s * 4 + 4);
    assert.ok(top >= 0 && left >= 0 && top + bh <= h && left + bw <= w, `box ${s} outside the image`);
    const area = (bh * bw) / (h * w);
    assert.ok(area > 0.15 && area < 0.95, `box ${s} area ${area}`);
    assert.ok(bw / bh > 0.4 && bw / bh < 2.5, `box ${s} ratio ${bw / bh}`);
  }
  // Impossible ratios fall back to the central crop with the ratio clamped.
  const fallback = randomCropBoxes(gen(), 1, 10, 40, [1, 1], [1, 1]);
  assert.deepEqual([...fallback], [0, 15, 10, 10]);
});

test('gaussian blur keeps a constant image, preserves the mean, and p = 0 is the identity', () => {
  torch.tidy(() => {
    const constant = torch.full([4, 3, 9, 9], 0.3);
    assertClose(gaussianBlur(constant, gen(), { sigma: [0.5, 2] }), constant, 1e-6, 'constant image');
    const x = randomBatch([4, 3, 16, 16]);
    const blurred = gaussianBlur(x, gen(), { sigma: [1, 2], kernelSize: 5 });
    assert.ok(blurred.sub(x).abs().max().item() > 0.05, 'blur changes a noisy image');
    assertClose(blurred.mean([2, 3]), x.mean([2, 3]), 0.02, 'per-channel mean');
    assert.ok(blurred.std().item() < x.std().item() * 0.8, 'blur reduces the variance of noise');
    assert.ok(gaussianBlur(x, gen(), { p: 0 }).equal(x));
    assert.throws(() => gaussianBlur(x, gen(), { kernelSize: 4 }), /kernelSize/);
  });
});

test('brightness multiplies and clamps; contrast 0 gives the mean luma; saturation 0 gives the luma', () => {
  torch.tidy(() => {
    const x = randomBatch([3, 3, 4, 4]);
    assertClose(adjustBrightness(x, 0.5), x.mul(0.5), 1e-6, 'brightness 0.5');
    assertClose(adjustBrightness(x, 2), x.mul(2).clamp(0, 1), 1e-6, 'brightness 2');
    const perSample = torch.tensor([0, 1, 0.25]);
    assertClose(adjustBrightness(x, perSample), x.mul(perSample.view([3, 1, 1, 1])), 1e-6, 'per-sample brightness');
    const meanLuma = luminance(x).mean([1, 2, 3], true).expandAs(x);
    assertClose(adjustContrast(x, 0), meanLuma, 1e-6, 'contrast 0');
    assertClose(adjustContrast(x, 1), x, 1e-6, 'contrast 1');
    assertClose(adjustSaturation(x, 0), luminance(x).expandAs(x), 1e-6, 'saturation 0');
    assertClose(adjustSaturation(x, 1), x, 1e-6, 'saturation 1');
  });
});

test('hue: a zero shift is the identity, a full turn too, and a rotation keeps the luma', () => {
  torch.tidy(() => {
    // Muted colors, so that rotations stay inside [0, 1] and nothing is clamped.
    const x = randomBatch([4, 3, 4, 4]).mul(0.2).add(0.4);
    assertClose(adjustHue(x, 0), x, 1e-5, 'shift 0');
    assertClose(adjustHue(adjustHue(x, 0.25), 0.25), adjustHue(x, 0.5), 1e-5, 'two quarter turns');
    assertClose(adjustHue(adjustHue(x, 0.5), 0.5), x, 1e-5, 'full turn');
    const rotated = adjustHue(x, 0.3);
    assert.ok(rotated.sub(x).abs().max().item() > 0.01, 'a rotation changes colors');
    assertClose(luminance(rotated), luminance(x), 1e-5, 'luma');
    const mono = randomBatch([2, 1, 4, 4]);
    assert.ok(adjustHue(mono, 0.3).equal(mono) && adjustSaturation(mono, 0).equal(mono));
    assertClose(adjustBrightness(mono, 0.5), mono.mul(0.5), 1e-6, 'brightness on gray');
  });
});

test('color jitter: zero strengths or p = 0 leave the batch alone; otherwise per-sample changes in [0, 1]', () => {
  torch.tidy(() => {
    const x = randomBatch([8, 3, 6, 6]);
    assertClose(colorJitter(x, gen(), {}), x, 0, 'no strengths');
    assertClose(colorJitter(x, gen(), { brightness: 0.8, contrast: 0.8, saturation: 0.8, hue: 0.2, p: 0 }), x, 1e-5, 'p = 0');
    const out = colorJitter(x, gen(), { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 });
    assert.ok(out.min().item() >= 0 && out.max().item() <= 1);
    for (let i = 0; i < 8; i++) assert.ok(!out.select(0, i).allclose(x.select(0, i), 1e-3, 1e-3), `sample ${i} unchanged`);
    const mono = randomBatch([4, 1, 6, 6]);
    assert.deepEqual(colorJitter(mono, gen(), { brightness: 0.4, saturation: 0.4, hue: 0.1 }).shape, [4, 1, 6, 6]);
  });
});

test('augment specs are validated with errors naming the field, and defaults are filled in', () => {
  assert.deepEqual(parseAugmentSpec({ randomResizedCrop: {} }).randomResizedCrop, { scale: [0.08, 1], ratio: [3 / 4, 4 / 3] });
  assert.deepEqual(parseAugmentSpec({ colorJitter: { brightness: 0.4 } }).colorJitter, {
    brightness: 0.4,
    contrast: 0,
    saturation: 0,
    hue: 0,
    p: 1,
  });
  assert.throws(() => parseAugmentSpec({ colorJitter: { hue: 0.7 } }), /augment\.colorJitter\.hue = 0\.7/);
  assert.throws(() => parseAugmentSpec({ randomResizedCrop: { scale: [0.9, 0.2] } }), /augment\.randomResizedCrop\.scale.*low <= high/);
  assert.throws(() => parseAugmentSpec({ horizontalFlip: 2 }), /augment\.horizontalFlip = 2/);
  assert.throws(() => parseAugmentSpec({ gaussianBlur: { kernelSize: 4 } }), /augment\.gaussianBlur\.kernelSize = 4: must be odd/);
  assert.throws(() => parseAugmentSpec({ rotate: 90 }), /rotate/);
});

const fullSpec = parseAugmentSpec({
  randomResizedCrop: { scale: [0.2, 1] },
  horizontalFlip: 0.5,
  colorJitter: { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1, p: 0.8 },
  grayscale: 0.2,
  gaussianBlur: { sigma: [0.1, 2], p: 0.5 },
});

test('a whole pipeline is a pure function of the generator seed', () => {
  torch.tidy(() => {
    const x = torch.randint(0, 256, [6, 3, 16, 16], gen(3), 'uint8');
    const a = augmentBatch(x, fullSpec, gen(11), 12);
    assert.deepEqual(a.shape, [6, 3, 12, 12]);
    assert.equal(a.dtype, 'float32');
    assert.ok(a.equal(augmentBatch(x, fullSpec, gen(11), 12)));
    assert.ok(!a.equal(augmentBatch(x, fullSpec, gen(12), 12)));
    assert.ok(a.isfinite().all().item() && a.min().item() >= 0 && a.max().item() <= 1);
  });
});

test('prepareImages: NHWC bytes to a normalized contiguous NCHW batch, gray expanded on request', () => {
  torch.tidy(() => {
    const pixels = Uint8Array.from({ length: 2 * 4 * 4 * 3 }, (_, i) => i % 256);
    const recipe = { height: 4, width: 4, storeChannels: 3 as const, channels: 3 as const, outputSize: 4 };
    const plain = prepareImages(pixels, 2, recipe, gen());
    const expected = torch.fromTypedArray(pixels, [2, 4, 4, 3]).permute([0, 3, 1, 2]).float().div(255);
    assert.ok(plain.isContiguous());
    assertClose(plain, expected, 0, 'no augmentation');
    const normalized = prepareImages(pixels, 2, { ...recipe, normalize: { mean: [0.1, 0.2, 0.3], std: [0.5, 0.25, 2] } }, gen());
    assertClose(normalized, normalizeImages(expected, [0.1, 0.2, 0.3], [0.5, 0.25, 2]), 1e-6, 'normalized');
    const gray = Uint8Array.from({ length: 2 * 4 * 4 }, (_, i) => i);
    const rgb = prepareImages(gray, 2, { ...recipe, storeChannels: 1, augment: fullSpec, outputSize: 6 }, gen());
    assert.deepEqual(rgb.shape, [2, 3, 6, 6]);
    const mono = prepareImages(gray, 2, { ...recipe, storeChannels: 1, channels: 1, augment: fullSpec }, gen());
    assert.deepEqual(mono.shape, [2, 1, 4, 4]);
  });
});
