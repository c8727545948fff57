import type { Backbone } from './backbone.js';
import { SmallAlexNet } from './alexnet.js';
import { NetworkInNetwork } from './nin.js';
import { CifarResNet } from './resnet.js';
import { SrResNet } from './srgan.js';

export { Backbone, convBnRelu } from './backbone.js';
export { NetworkInNetwork, type NinOptions } from './nin.js';
export { CifarResNet, type ResNetOptions } from './resnet.js';
export { SmallAlexNet, type AlexNetOptions } from './alexnet.js';
export { SrResNet, SrganDiscriminator, SubPixelUpsampler, DenseCritic, PReLU, type SrResNetOptions } from './srgan.js';

/** Backbones by the names configs and the CLI use. */
export const backbones: Record<string, { description: string; create: (inChannels: number) => Backbone }> = {
  nin3: { description: 'Network-in-Network, 3 blocks (RotNet)', create: (inChannels) => new NetworkInNetwork({ blocks: 3, inChannels }) },
  nin4: {
    description: 'Network-in-Network, 4 blocks (RotNet CIFAR default)',
    create: (inChannels) => new NetworkInNetwork({ blocks: 4, inChannels }),
  },
  nin5: { description: 'Network-in-Network, 5 blocks (RotNet)', create: (inChannels) => new NetworkInNetwork({ blocks: 5, inChannels }) },
  resnet18: { description: 'CIFAR ResNet-18, width 64', create: (inChannels) => new CifarResNet({ depth: 18, width: 64, inChannels }) },
  'resnet18-small': {
    description: 'CIFAR ResNet-18, width 16',
    create: (inChannels) => new CifarResNet({ depth: 18, width: 16, inChannels }),
  },
  resnet34: { description: 'CIFAR ResNet-34, width 64', create: (inChannels) => new CifarResNet({ depth: 34, width: 64, inChannels }) },
  alexnet: {
    description: 'small AlexNet-style trunk for patch tasks, width 64',
    create: (inChannels) => new SmallAlexNet({ width: 64, inChannels }),
  },
  'alexnet-small': {
    description: 'small AlexNet-style trunk, width 32',
    create: (inChannels) => new SmallAlexNet({ width: 32, inChannels }),
  },
  srresnet: {
    description: 'SRResNet trunk (SRGAN generator), 16 residual blocks, width 64',
    create: (inChannels) => new SrResNet({ inChannels }),
  },
  'srresnet-small': {
    description: 'SRResNet trunk, 8 residual blocks, width 32',
    create: (inChannels) => new SrResNet({ blocks: 8, width: 32, inChannels }),
  },
};

export function createBackbone(name: string, inChannels = 3): Backbone {
  const entry = backbones[name];
  if (!entry) throw new Error(`unknown backbone '${name}'; valid backbones: ${Object.keys(backbones).join(', ')}`);
  return entry.create(inChannels);
}
