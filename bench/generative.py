"""Plain PyTorch side of the generative benchmark: one SRGAN generator step (SRResNet, x2), as bench/generative.mjs runs it in Pretext.

Prints one JSON line: {"images_per_s", "steps", "loss"}.
Run with Debian's /usr/bin/python3 (python3-torch).
"""
import argparse
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=32, help="high-res side")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--min-steps", type=int, default=5)
    p.add_argument("--min-seconds", type=float, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--channels-last", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = SRResNet(scale=a.scale)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999))
    low = a.size // a.scale
    pool = [(torch.randn(a.batch, 3, low, low), torch.randn(a.batch, 3, a.size, a.size)) for _ in range(4)]
    step, measured, start = 0, 0, None
    while True:
        x, y = pool[step % len(pool)]
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        step += 1
        if step == a.warmup:
            start = time.perf_counter()
        elif step > a.warmup:
            measured += 1
            elapsed = time.perf_counter() - start
            if measured >= a.min_steps and elapsed >= a.min_seconds:
                break
    print(json.dumps({"images_per_s": measured * a.batch / elapsed, "steps": step, "loss": loss.item()}))


if __name__ == "__main__":
    main()
