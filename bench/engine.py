"""Plain PyTorch side of the engine benchmark: the same models and recipe as engine-pretext.mjs.

Prints one JSON line: {"model", "images_per_s", "steps", "rss_mb": {...}}.
Run with Debian's /usr/bin/python3 (python3-torch).
"""
import argparse
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn_relu(cin, cout, k, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def nin(blocks=4):
    c = 192
    stages = [
        nn.Sequential(conv_bn_relu(3, c, 5), conv_bn_relu(c, 160, 1), conv_bn_relu(160, 96, 1), nn.MaxPool2d(3, 2, 1)),
        nn.Sequential(conv_bn_relu(96, c, 5), conv_bn_relu(c, c, 1), conv_bn_relu(c, c, 1), nn.AvgPool2d(3, 2, 1)),
        nn.Sequential(conv_bn_relu(c, c, 3), conv_bn_relu(c, c, 1), conv_bn_relu(c, c, 1), *([nn.AvgPool2d(3, 2, 1)] if blocks > 3 else [])),
    ]
    for _ in range(3, blocks):
        stages.append(nn.Sequential(conv_bn_relu(c, c, 3), conv_bn_relu(c, c, 1), conv_bn_relu(c, c, 1)))
    return nn.Sequential(*stages), c


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        # In place where autograd keeps nothing, as torchvision's ResNet and Pretext's.
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)), inplace=True)))
        out += self.shortcut(x) if self.shortcut is not None else x
        return F.relu(out, inplace=True)


def resnet18(width):
    layers = [nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))]
    cin = width
    for s, w in enumerate([width, width * 2, width * 4, width * 8]):
        units = []
        for i in range(2):
            units.append(BasicBlock(cin, w, 2 if i == 0 and s > 0 else 1))
            cin = w
        layers.append(nn.Sequential(*units))
    return nn.Sequential(*layers), cin


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["nin4", "resnet18-small"], required=True)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--min-steps", type=int, default=5)
    p.add_argument("--min-seconds", type=float, default=10)
    p.add_argument("--max-steps", type=int, default=1_000_000)
    p.add_argument("--rss-at", type=int, nargs="*", default=[])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--channels-last", action="store_true", help="convert the model as PyTorch's memory_format docs advise")
    p.add_argument("--bf16", action="store_true", help="forward and loss under torch.autocast('cpu', dtype=torch.bfloat16)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    trunk, channels = nin(4) if a.model == "nin4" else resnet18(16)
    head = nn.Linear(channels, 10)
    if a.channels_last:
        trunk = trunk.to(memory_format=torch.channels_last)
    params = list(trunk.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    pool = [(torch.randn(a.batch, 3, 32, 32), torch.randint(0, 10, (a.batch,))) for _ in range(4)]
    rss = {}
    start = None
    measured = 0
    step = 0
    while True:
        x, y = pool[step % len(pool)]
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            loss = F.cross_entropy(head(trunk(x).mean((2, 3))), y)
        loss.backward()
        opt.step()
        step += 1
        if step in a.rss_at:
            rss[str(step)] = rss_mb()
        if step == a.warmup:
            start = time.perf_counter()
        elif step > a.warmup:
            measured += 1
            elapsed = time.perf_counter() - start
            if (measured >= a.min_steps and elapsed >= a.min_seconds) or step >= a.max_steps:
                break
    print(json.dumps({"model": a.model, "images_per_s": measured * a.batch / elapsed, "steps": step, "loss": loss.item(), "rss_mb": rss}))


if __name__ == "__main__":
    main()
