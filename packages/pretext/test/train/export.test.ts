// `pretext export`: the backbone alone, under names a module of the same layout loads strictly, and
// the Python example (examples/load_in_pytorch.py) that loads it into PyTorch and matches Pretext's
// features. The Python half skips, saying why, where no python3 can import torch.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as torch from '@pretext/torch';
import { createBackbone, type Backbone } from '../../src/models/index.js';
import { saveBackbone } from '../../src/train/export.js';
import { train } from '../../src/train/trainer.js';
import { tempDir } from '../temp.js';

const dir = tempDir('export');
const repo = fileURLToPath(new URL('../../../../../', import.meta.url));
const cli = join(repo, 'packages/pretext/dist/src/cli/main.js');
const example = join(repo, 'examples/load_in_pytorch.py');
const python = ['python3', '/usr/bin/python3'].find((p) => spawnSync(p, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0);
const skipPython = python ? false : 'no python3 here can import torch (Debian: apt-get install python3-torch)';

/** Inputs and the backbone's eval-mode features at `block`, as the example's --check reads them. */
function writeCheck(path: string, backbone: Backbone, block: string, shape: number[]): void {
  torch.tidy(() => {
    const input = torch.randn(shape);
    backbone.eval();
    const features = torch.noGrad(() => backbone.forwardTo(input, block)).contiguous();
    torch.safetensors.save(path, { input, features }, { block });
  });
}

function runExample(file: string, check: string): string {
  const child = spawnSync(python!, [example, file, '--check', check, '--tolerance', '1e-5'], { encoding: 'utf8' });
  assert.equal(child.status, 0, `${child.stdout}\n${child.stderr}`);
  return child.stdout;
}

test('a trained run exports its backbone alone; PyTorch loads it strictly and gets the same features', async (t) => {
  const run = join(dir, 'run');
  await train(
    { task: 'rotation', data: 'fashion-mnist', backbone: 'nin4', limit: 32, epochs: 1, batchSize: 16, out: run, threads: 1 },
    { progress: false, log: () => {} },
  );
  const out = join(dir, 'nin4.safetensors');
  const exported = spawnSync(process.execPath, [cli, 'export', '--checkpoint', run, '--out', out], { encoding: 'utf8' });
  assert.equal(exported.status, 0, exported.stderr);
  assert.equal(JSON.parse(exported.stdout).backbone, 'nin4');

  const { tensors, metadata } = torch.safetensors.load(out);
  assert.ok(
    [...tensors.keys()].every((name) => name.startsWith('blocks.')),
    'no head, optimizer or RNG entries, no prefix',
  );
  assert.deepEqual(
    [metadata.format, metadata.backbone, metadata.inChannels, metadata.imageSize],
    ['pretext-backbone-1', 'nin4', '1', '28'],
  );
  const fresh = createBackbone('nin4', 1);
  fresh.loadStateDict(tensors); // strict: every name and shape matches
  assert.notEqual(Number(tensors.get('blocks.0.0.1.num_batches_tracked')!.item()), 0, 'trained batch-norm statistics are in the file');
  for (const t of tensors.values()) t.dispose();

  if (skipPython) return t.skip(skipPython);
  const check = join(dir, 'nin4-check.safetensors');
  writeCheck(check, fresh, 'block4', [3, 1, 28, 28]);
  assert.match(
    runExample(out, check),
    /loaded nin4 with load_state_dict\(strict=True\): 72 tensors[\s\S]*features at block4 \[3, 192, 4, 4\]/,
  );
});

test('the small ResNet (stem, residual stages, shortcuts) loads in PyTorch as well', { skip: skipPython }, () => {
  torch.manualSeed(3);
  const backbone = createBackbone('resnet18-small', 3);
  torch.noGrad(() => torch.tidy(() => backbone.forward(torch.randn([8, 3, 16, 16]).mul(2).add(1)))); // moves the BN statistics
  const out = join(dir, 'resnet.safetensors');
  saveBackbone(backbone, out, { backbone: 'resnet18-small', imageSize: 16, normalization: { mean: [0, 0, 0], std: [1, 1, 1] } });
  const check = join(dir, 'resnet-check.safetensors');
  writeCheck(check, backbone, 'layer4', [2, 3, 16, 16]);
  assert.match(runExample(out, check), /features at layer4 \[2, 128, 2, 2\]/);
});
