"""Plain PyTorch side of the generative benchmark: one generator step of a model, as bench/generative.mjs runs it in Pretext.

--model superres: SRGAN's generator (SRResNet, x2), MSE.
--model inpainting: a Context Encoder (Pathak et al. 2016) as packages/pretext/src/tasks/inpainting.ts builds it: the
  small AlexNet encoder on RGB + mask channel, channel-wise FC bottleneck, transposed-conv decoder, center mask,
  0.999 x overlap-weighted L2 + 0.001 x adversarial through the (frozen) discriminator, and the hole metrics the task logs.
--model colorization: the regression loss of packages/pretext/src/tasks/colorization.ts: NIN-4 on L, decoder to ab,
  L2 on ab / 110, and the ab and PSNR metrics the task logs.

Prints one JSON line: {"images_per_s", "steps", "loss"}; with --describe, {"parameters": {"trained", "frozen"}} (counts and
sorted shapes) for the harness to check against Pretext's modules. Run with Debian's /usr/bin/python3 (python3-torch).
"""
import argparse
import json
import math
import os
import time
from typing import Callable, List, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn_relu(c_in, c_out, kernel, stride=1):
    """Pretext's convBnRelu: conv without bias, BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


# ---------------------------------------------------------------------------------------------
# SRGAN's generator


class ResidualBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.PReLU(c), nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)
        )

    def forward(self, x):
        return self.body(x) + x


class SRResNet(nn.Module):
    """Ledig et al. 2017: 9x9 stem with PReLU, residual blocks, conv-BN plus the global skip, sub-pixel doublings, 9x9 out."""

    def __init__(self, blocks=16, c=64, scale=2):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 9, 1, 4), nn.PReLU(c))
        self.trunk = nn.Sequential(*[ResidualBlock(c) for _ in range(blocks)], nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        ups = []
        for _ in range(scale.bit_length() - 1):
            ups += [nn.Conv2d(c, 4 * c, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU(c)]
        self.tail = nn.Sequential(*ups, nn.Conv2d(c, 3, 9, 1, 4))

    def forward(self, x):
        h = self.stem(x)
        return self.tail(self.trunk(h) + h)


# ---------------------------------------------------------------------------------------------
# Encoders (packages/pretext/src/models/alexnet.ts, nin.ts) and the decoder (models/decoder.ts)


def small_alexnet(c_in, width=64):
    c = [width, width * 2, width * 3, width * 3, width * 2]
    pool = lambda: nn.MaxPool2d(3, 2, 1)  # noqa: E731
    return nn.Sequential(
        conv_bn_relu(c_in, c[0], 5), pool(), conv_bn_relu(c[0], c[1], 3), pool(),
        conv_bn_relu(c[1], c[2], 3), conv_bn_relu(c[2], c[3], 3), conv_bn_relu(c[3], c[4], 3),
    )  # fmt: skip


def network_in_network(c_in, blocks=4):
    c = 192
    layers = [conv_bn_relu(c_in, c, 5), conv_bn_relu(c, 160, 1), conv_bn_relu(160, 96, 1), nn.MaxPool2d(3, 2, 1)]
    layers += [conv_bn_relu(96, c, 5), conv_bn_relu(c, c, 1), conv_bn_relu(c, c, 1), nn.AvgPool2d(3, 2, 1)]
    layers += [conv_bn_relu(c, c, 3), conv_bn_relu(c, c, 1), conv_bn_relu(c, c, 1)] + ([nn.AvgPool2d(3, 2, 1)] if blocks > 3 else [])
    for _ in range(3, blocks):
        layers += [conv_bn_relu(c, c, 3), conv_bn_relu(c, c, 1), conv_bn_relu(c, c, 1)]
    return nn.Sequential(*layers)


def upsampling_decoder(c_in, c_out, from_size, to_size, width=128, projection_kernel=3):
    """Stride-2 4x4 transposed convs with BatchNorm and ReLU up to the target size (width halved per stage, at least 32), then a projection."""
    layers, channels = [], c_in
    for _ in range(int(math.log2(to_size // from_size))):
        layers += [nn.ConvTranspose2d(channels, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        channels, width = width, max(32, width // 2)
    layers.append(nn.Conv2d(channels, c_out, projection_kernel, padding=(projection_kernel - 1) // 2))
    return nn.Sequential(*layers)


def output_shape(encoder, channels, size):
    """[C, H, W] of the encoder's output: a dry forward in eval mode, as Pretext's backboneOutputShape."""
    encoder.eval()
    with torch.no_grad():
        shape = list(encoder(torch.zeros(1, channels, size, size)).shape[1:])
    encoder.train()
    return shape


# ---------------------------------------------------------------------------------------------
# Context Encoder


class ChannelwiseLinear(nn.Module):
    """A dense layer per channel over the H x W positions: weight C x HW x HW, bias C x 1 x HW."""

    def __init__(self, channels, positions):
        super().__init__()
        bound = 1 / math.sqrt(positions)
        self.weight = nn.Parameter(torch.empty(channels, positions, positions).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(channels, 1, positions).uniform_(-bound, bound))

    def forward(self, x):
        n, c, h, w = x.shape
        per_channel = x.reshape(n, c, h * w).permute(1, 0, 2)
        return per_channel.bmm(self.weight).add(self.bias).permute(1, 0, 2).reshape(n, c, h, w)


def discriminator(c_in, size, width):
    """DCGAN-style: stride-2 4x4 convs with LeakyReLU(0.2) (BatchNorm after the first) down to 4 x 4, then a conv to one logit."""
    layers, channels, side, stage = [], c_in, size, 0
    while side > 4:
        out = min(width * 2**stage, width * 8)
        layers += [nn.Conv2d(channels, out, 4, 2, 1, bias=stage == 0)] + ([nn.BatchNorm2d(out)] if stage > 0 else []) + [nn.LeakyReLU(0.2)]
        channels, side, stage = out, side // 2, stage + 1
    return nn.Sequential(*layers, nn.Conv2d(channels, 1, side), nn.Flatten(0))


def center_mask(n, size):
    middle = ((torch.arange(size) >= size / 4) & (torch.arange(size) < 3 * size / 4)).float()
    return (middle.view(size, 1) * middle.view(1, size)).expand(n, 1, size, size).contiguous()


def psnr_of_mse(mse):
    return mse.clamp(min=1e-10).log() * (-10 / math.log(10))


def to_display(images):
    """The task's denormalization (identity here: no store), clamped to [0, 1]."""
    c = images.shape[1]
    return (images * torch.ones(c).view(1, c, 1, 1) + torch.zeros(c).view(1, c, 1, 1)).clamp(0, 1)


def hole_errors(completed, targets, mask):
    difference = (to_display(completed) - to_display(targets)) * mask
    count = (mask.flatten(1).sum(1) * completed.shape[1]).clamp(min=1)
    return difference.square().flatten(1).sum(1) / count, difference.abs().flatten(1).sum(1) / count


def blur_fill(images, mask, iterations):
    hole = mask > 0.5
    blur = lambda x: F.avg_pool2d(x, 3, 1, 1)  # noqa: E731
    reached = 1 - mask
    values = images * reached
    for _ in range(iterations):
        weight = blur(reached)
        values = torch.where(hole, blur(values) / weight.clamp(min=1e-6), images)
        reached = torch.where(hole, (weight > 0).float(), reached)
    return values


# ---------------------------------------------------------------------------------------------
# CIE Lab (packages/pretext/src/tasks/lab.ts)

RGB_TO_XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.072175], [0.0193339, 0.119192, 0.9503041]])
XYZ_TO_RGB = torch.tensor([[3.2404542, -1.5371385, -0.4985314], [-0.969266, 1.8760108, 0.041556], [0.0556434, -0.2040259, 1.0572252]])
WHITE = RGB_TO_XYZ.sum(1).view(1, 3, 1, 1)
DELTA = 6 / 29


def mix(x, matrix):
    return x.movedim(1, -1).matmul(matrix.t()).movedim(-1, 1)


def rgb_to_lab(rgb):
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb.clamp(min=0.04045) + 0.055) / 1.055).pow(2.4))
    t = mix(linear, RGB_TO_XYZ) / WHITE
    fx, fy, fz = torch.where(t > DELTA**3, t.clamp(min=DELTA**3).pow(1 / 3), t / (3 * DELTA * DELTA) + 4 / 29).unbind(1)
    return torch.stack([fy * 116 - 16, (fx - fy) * 500, (fy - fz) * 200], 1)


def lab_to_rgb(lab):
    l, a, b = lab.unbind(1)
    fy = (l + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], 1)
    linear = mix(torch.where(f > DELTA, f.pow(3), (f - 4 / 29) * (3 * DELTA * DELTA)) * WHITE, XYZ_TO_RGB).clamp(0, 1)
    return torch.where(linear <= 0.0031308, linear * 12.92, linear.clamp(min=0.0031308).pow(1 / 2.4) * 1.055 - 0.055)


def recolor(lightness, ab):
    n, _, h, w = lightness.shape
    return lab_to_rgb(torch.cat([lightness, ab.expand(n, 2, h, w)], 1))


def psnr(prediction, target):
    return psnr_of_mse((prediction - target).square().flatten(1).mean(1)).mean()


def ab_distance(predicted, truth):
    return (predicted - truth).square().sum(1).sqrt().mean()


# ---------------------------------------------------------------------------------------------
# The models: the modules Adam trains, the frozen ones, 4 input batches, and the step's scalars (loss first).


class Bench(NamedTuple):
    trained: nn.Module
    frozen: nn.Module
    pool: list
    step: Callable[..., List[torch.Tensor]]


def superres(a):
    model = SRResNet(scale=a.scale)
    low = a.size // a.scale
    pool = [(torch.randn(a.batch, 3, low, low), torch.randn(a.batch, 3, a.size, a.size)) for _ in range(4)]
    return Bench(model, nn.Module(), pool, lambda x, y: [F.mse_loss(model(x), y)])


def inpainting(a, decoder_width=128, discriminator_width=64, adversarial_weight=0.001, overlap_weight=10):
    encoder = small_alexnet(4)  # RGB with the hole filled by the mean (0), plus the mask channel
    features, from_size, _ = output_shape(encoder, 4, a.size)
    bottleneck = nn.Sequential(
        ChannelwiseLinear(features, from_size * from_size), nn.Conv2d(features, features, 1, bias=False), nn.BatchNorm2d(features), nn.ReLU(True)
    )
    decoder = upsampling_decoder(features, 3, from_size, a.size, decoder_width)
    critic = discriminator(3, a.size // 2, discriminator_width)
    overlap = max(1, round(a.size / 32))
    start, side = math.ceil(a.size / 4), a.size // 2

    def batch():
        images, mask = torch.rand(a.batch, 3, a.size, a.size), center_mask(a.batch, a.size)
        return torch.cat([images * (1 - mask), mask], 1), images, mask

    def step(inputs, targets, mask):
        prediction = decoder(bottleneck(encoder(inputs)))
        grown = F.max_pool2d(mask, 2 * overlap + 1, 1, overlap)
        weights = (grown - mask) * overlap_weight + mask
        covered = ((weights > 0).sum() * prediction.shape[1]).clamp(min=1)
        l2 = ((prediction - targets).square() * weights).sum() / covered
        completed = torch.where(mask > 0.5, prediction, targets)
        with torch.no_grad():
            hole_psnr = lambda images: psnr_of_mse(hole_errors(images, targets, mask)[0]).mean()  # noqa: E731
            mse, l1 = hole_errors(completed, targets, mask)
            metrics = [psnr_of_mse(mse).mean(), l1.mean(), hole_psnr(targets * (1 - mask)), hole_psnr(blur_fill(targets, mask, a.size // 2))]
        logits = critic(completed[:, :, start : start + side, start : start + side])
        adversarial = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        return [l2 * (1 - adversarial_weight) + adversarial * adversarial_weight, l2, *metrics, adversarial]

    return Bench(nn.ModuleList([encoder, bottleneck, decoder]), critic, [batch() for _ in range(4)], step)


def colorization(a, decoder_width=128, ab_scale=110):
    encoder = network_in_network(1)
    features, from_size, _ = output_shape(encoder, 1, a.size)
    decoder = upsampling_decoder(features, 2, from_size, a.size, decoder_width, projection_kernel=1)
    mean_ab = torch.zeros(2)  # the data's mean ab, without a store

    def batch():
        rgb = torch.rand(a.batch, 3, a.size, a.size)
        lab = rgb_to_lab(rgb)
        lightness = lab[:, :1]
        return (lightness - 50) / 50, lab[:, 1:], lightness, rgb

    def step(inputs, ab, lightness, rgb):
        outputs = decoder(encoder(inputs))
        loss = F.mse_loss(outputs, ab / ab_scale)
        with torch.no_grad():
            predicted = outputs.detach() * ab_scale
            lab = torch.cat([lightness, ab], 1)
            gray = mean_ab.view(1, 2, 1, 1)
            truth = lab[:, 1:3]
            metrics = [ab_distance(predicted, ab), psnr(recolor(lightness, predicted), rgb)]
            metrics += [ab_distance(gray.expand_as(truth), truth), psnr(recolor(lab[:, :1], gray), rgb)]
        return [loss, *metrics]

    return Bench(nn.ModuleList([encoder, decoder]), nn.Module(), [batch() for _ in range(4)], step)


MODELS = {"superres": superres, "inpainting": inpainting, "colorization": colorization}


def describe(module):
    shapes = sorted("x".join(map(str, p.shape)) for p in module.parameters())
    return {"count": sum(p.numel() for p in module.parameters()), "shapes": shapes}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=MODELS, default="superres")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=32, help="output side")
    p.add_argument("--scale", type=int, default=2, help="superres: the upscaling factor")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--min-steps", type=int, default=5)
    p.add_argument("--min-seconds", type=float, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--betas", type=float, nargs=2, default=(0.9, 0.999))
    p.add_argument("--weight-decay", type=float, default=0)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--describe", action="store_true", help="print the parameter counts and shapes instead of timing")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    bench = MODELS[a.model](a)
    if a.describe:
        print(json.dumps({"parameters": {"trained": describe(bench.trained), "frozen": describe(bench.frozen)}}))
        return
    for p in bench.frozen.parameters():
        p.requires_grad_(False)  # the discriminator phase's: the generator's loss passes through it without writing gradients
    if a.channels_last:
        bench.trained.to(memory_format=torch.channels_last)
        bench.frozen.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(bench.trained.parameters(), lr=a.lr, betas=tuple(a.betas), weight_decay=a.weight_decay)
    step, measured, start = 0, 0, None
    while True:
        opt.zero_grad(set_to_none=True)
        scalars = bench.step(*bench.pool[step % len(bench.pool)])
        scalars[0].backward()
        opt.step()
        loss = torch.stack([s.detach().reshape(()).double() for s in scalars]).tolist()[0]  # read together, as Pretext's trainer
        step += 1
        if step == a.warmup:
            start = time.perf_counter()
        elif step > a.warmup:
            measured += 1
            elapsed = time.perf_counter() - start
            if measured >= a.min_steps and elapsed >= a.min_seconds:
                break
    print(json.dumps({"images_per_s": measured * a.batch / elapsed, "steps": step, "loss": loss}))


if __name__ == "__main__":
    main()
