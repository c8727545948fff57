"""Load a backbone written by `pretext export` into plain PyTorch.

    pretext export --checkpoint runs/rot --out backbone.safetensors
    python3 examples/load_in_pytorch.py backbone.safetensors [--check check.safetensors]

The modules below have Pretext's layout (models/nin.py and models/resnet.py there), so their
state dicts have the file's names and `load_state_dict(strict=True)` takes it as it is. Inputs are
N x C x H x W float32, scaled to [0, 1] and normalized with the file's `mean` and `std`.
`--check` compares the features at a block with those Pretext computed on the same inputs (a
safetensors file with tensors `input` and `features` and metadata `block`).
Needs only torch (Debian python3-torch); Hugging Face's safetensors package is used when present.
"""

import argparse
import json
import struct
import sys

import torch
from torch import nn


def conv_bn_relu(cin, cout, kernel, stride=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Backbone(nn.Module):
    """Named blocks run in order; features(x, block) returns a block's output map."""

    block_names = []

    def features(self, x, block):
        for name, stage in zip(self.block_names, self.blocks):
            x = stage(x)
            if name == block:
                return x
        raise KeyError(f"no block {block!r}; blocks are {self.block_names}")

    def forward(self, x):
        return self.features(x, self.block_names[-1])


class NetworkInNetwork(Backbone):
    """RotNet's NIN with 3, 4 or 5 blocks of three conv units."""

    def __init__(self, blocks=4, in_channels=3):
        super().__init__()
        c = 192
        stages = [
            nn.Sequential(conv_bn_relu(in_channels, c, 5), conv_bn_relu(c, 160, 1), conv_bn_relu(160, 96, 1),
                          nn.MaxPool2d(3, stride=2, padding=1)),
            nn.Sequential(conv_bn_relu(96, c, 5), conv_bn_relu(c, c, 1), conv_bn_relu(c, c, 1),
                          nn.AvgPool2d(3, stride=2, padding=1)),
            nn.Sequential(conv_bn_relu(c, c, 3), conv_bn_relu(c, c, 1), conv_bn_relu(c, c, 1),
                          *([nn.AvgPool2d(3, stride=2, padding=1)] if blocks > 3 else [])),
        ]
        for _ in range(3, blocks):
            stages.append(nn.Sequential(conv_bn_relu(c, c, 3), conv_bn_relu(c, c, 1), conv_bn_relu(c, c, 1)))
        self.blocks = nn.ModuleList(stages)
        self.block_names = [f"block{i + 1}" for i in range(blocks)]


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + (self.shortcut(x) if self.shortcut is not None else x))


class CifarResNet(Backbone):
    """ResNet for CIFAR-sized inputs: a 3x3 stem, no max-pool, four stages of basic blocks."""

    block_names = ["stem", "layer1", "layer2", "layer3", "layer4"]

    def __init__(self, depth=18, width=64, in_channels=3):
        super().__init__()
        depths = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}[depth]
        stages = [nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                nn.ReLU(inplace=True))]
        cin = width
        for s, (units, cout) in enumerate(zip(depths, [width, width * 2, width * 4, width * 8])):
            blocks = []
            for i in range(units):
                blocks.append(BasicBlock(cin, cout, 2 if i == 0 and s > 0 else 1))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.ModuleList(stages)


BACKBONES = {
    "nin3": lambda c: NetworkInNetwork(3, c),
    "nin4": lambda c: NetworkInNetwork(4, c),
    "nin5": lambda c: NetworkInNetwork(5, c),
    "resnet18": lambda c: CifarResNet(18, 64, c),
    "resnet18-small": lambda c: CifarResNet(18, 16, c),
    "resnet34": lambda c: CifarResNet(34, 64, c),
}

DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}


def load_safetensors(path):
    """(tensors, metadata) of a safetensors file: the safetensors package's reader, else the format read directly."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        metadata = header.pop("__metadata__", {})
        try:
            from safetensors.torch import load_file
            return load_file(path), metadata
        except ImportError:
            data = bytearray(f.read())
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        flat = torch.frombuffer(data[start:end], dtype=DTYPES[info["dtype"]]) if end > start else torch.empty(0, dtype=DTYPES[info["dtype"]])
        tensors[name] = flat.reshape(info["shape"]).clone()
    return tensors, metadata


def load_backbone(path):
    """The backbone module of an exported file, in eval mode, and the file's metadata."""
    state, metadata = load_safetensors(path)
    if metadata.get("format") != "pretext-backbone-1":
        sys.exit(f"{path} is not a file written by `pretext export` (format {metadata.get('format')!r})")
    name = metadata["backbone"]
    if name not in BACKBONES:
        sys.exit(f"backbone {name!r} has no PyTorch definition here; defined: {', '.join(BACKBONES)}")
    model = BACKBONES[name](int(metadata["inChannels"]))
    model.load_state_dict(state, strict=True)
    return model.eval(), metadata


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("backbone", help="a file written by pretext export")
    parser.add_argument("--check", help="inputs and Pretext's features at a block, to compare")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest absolute difference accepted")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, metadata = load_backbone(args.backbone)
    print(f"loaded {metadata['backbone']} with load_state_dict(strict=True): {len(model.state_dict())} tensors, "
          f"blocks {json.loads(metadata['blocks'])}, input {metadata['inChannels']} x {metadata['imageSize']} x {metadata['imageSize']}")
    if not args.check:
        return
    tensors, check = load_safetensors(args.check)
    with torch.no_grad():
        ours = model.features(tensors["input"], check["block"])
    theirs = tensors["features"]
    difference = (ours - theirs).abs().max().item()
    scale = theirs.abs().max().item()
    print(f"features at {check['block']} {list(ours.shape)}: largest difference {difference:.2e} (largest value {scale:.2e})")
    if ours.shape != theirs.shape or not difference <= args.tolerance:
        sys.exit(f"features differ from Pretext's by {difference:.2e} (tolerance {args.tolerance:.0e})")


if __name__ == "__main__":
    main()
