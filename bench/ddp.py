"""PyTorch side of the data-parallel benchmark (bench/ddp.mjs): NIN-4 with engine.py's recipe.

One process, or one rank of torch.distributed's own DistributedDataParallel over gloo when launched
with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (default DDP settings: 25 MB buckets reduced from
gradient hooks during backward, buffers broadcast at each forward). Each rank trains on its share of
the global batch. Prints one JSON line: {"steps_per_s", "steps", "world_size", "threads"}.
Run with Debian's /usr/bin/python3 (python3-torch).
"""
import argparse
import json
import os
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from engine import nin


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk, channels = nin(4)
        self.head = nn.Linear(channels, 10)

    def forward(self, x):
        return self.head(self.trunk(x).mean((2, 3)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--global-batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    # Channels-last with tcmalloc (preloaded by ddp.mjs): PyTorch's fastest setting in bench/engine.mjs.
    net = Net().to(memory_format=torch.channels_last)
    model = nn.parallel.DistributedDataParallel(net) if world > 1 else net
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    torch.manual_seed(rank + 1)
    batch = a.global_batch // world
    pool = [(torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))) for _ in range(4)]
    start = 0.0
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            start = time.perf_counter()
        x, y = pool[step % len(pool)]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    elapsed = time.perf_counter() - start
    if world > 1:
        dist.destroy_process_group()
    print(json.dumps({"steps_per_s": a.steps / elapsed, "steps": a.steps, "world_size": world, "threads": a.threads}))


if __name__ == "__main__":
    main()
