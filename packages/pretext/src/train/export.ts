// A trained backbone alone, for use outside Pretext: its parameters and buffers under the names a
// PyTorch module of the same layout has (blocks.<i>..., as examples/load_in_pytorch.py defines
// them), so that load_state_dict(strict=True) takes the file as it is. Convolution weights are
// stored in NCHW order whatever their memory layout here (safetensors holds logical order), and the
// metadata says how to feed the network: input channels, image size, normalization, block names.
import { safetensors } from '@pretext/torch';
import type { Backbone } from '../models/backbone.js';
import { loadPretrained } from './pretrained.js';

export const BACKBONE_FORMAT = 'pretext-backbone-1';

export interface BackboneExportInfo {
  /** Registry name, e.g. 'nin4' or 'resnet18-small'. */
  backbone: string;
  imageSize: number;
  normalization: { mean: number[]; std: number[] };
  /** Anything else worth recording (task, checkpoint). */
  extra?: Record<string, string>;
}

/** Writes `backbone`'s state dict, alone, to `out` (atomically) with the metadata that says how to use it. */
export function saveBackbone(
  backbone: Backbone,
  out: string,
  info: BackboneExportInfo,
): { tensors: number; metadata: Record<string, string> } {
  const state = backbone.stateDict();
  const metadata: Record<string, string> = {
    format: BACKBONE_FORMAT,
    backbone: info.backbone,
    inChannels: String(backbone.inChannels),
    imageSize: String(info.imageSize),
    mean: JSON.stringify(info.normalization.mean),
    std: JSON.stringify(info.normalization.std),
    blocks: JSON.stringify(backbone.blockNames),
    ...info.extra,
  };
  safetensors.save(out, state, metadata);
  return { tensors: state.size, metadata };
}

/** `pretext export`: the backbone of a run folder (its best, else latest, checkpoint) or of a checkpoint sidecar. */
export function exportBackbone(checkpoint: string, out: string): { tensors: number; metadata: Record<string, string> } {
  const pretrained = loadPretrained(checkpoint);
  const { config } = pretrained;
  return saveBackbone(pretrained.backbone, out, {
    backbone: config.backbone,
    imageSize: pretrained.imageSize,
    normalization: pretrained.normalization,
    extra: { task: config.task, checkpoint: pretrained.checkpoint },
  });
}
