// The memory estimate of a training step: dry steps at two small sizes extrapolate to the step
// measured directly, leave the model and the RNG as they were, and a step that would not fit is
// refused with the flags to change.
import assert from 'node:assert/strict';
import { totalmem } from 'node:os';
import { test } from 'node:test';
import * as torch from '@pretext/torch';
import { createBackbone } from '../../src/models/index.js';
import { getTask } from '../../src/tasks/registry.js';
import { availableMemory, checkStepMemory, dryStep, estimateStepMemory, type StepMemoryEstimate } from '../../src/train/memory.js';

function rotationStep(imageSize: number, backbone = 'resnet18-small') {
  const task = getTask('rotation');
  const instance = task.create(createBackbone(backbone, 3), task.options.parse({}), { inChannels: 3, imageSize });
  return { instance, step: dryStep({ instance, channels: 3, imageSize }) };
}

// NIN-4 at 32 px: a step of 16 items (64 rotated images) needs most of a GiB, as real steps do; at
// a few MB the heap malloc keeps from earlier steps hides part of the growth.
test('the estimate at batch 16 from dry steps of 1 and 4 items is within 20% of the step measured at 16', () => {
  const { step } = rotationStep(32, 'nin4');
  const estimate = estimateStepMemory(step, 16);
  const direct = estimateStepMemory(step, 16, { probes: [16, 16] });
  assert.deepEqual(
    estimate.probes.map((p) => p.items),
    [1, 4],
  );
  const ratio = estimate.stepBytes / direct.probes[0].bytes;
  assert.ok(ratio > 0.8 && ratio < 1.2, `estimate ${estimate.stepBytes} vs measured ${direct.probes[0].bytes} (${estimate.method})`);
  assert.ok(estimate.perItemBytes > 0);
});

test('a dry step leaves weights, batch-norm statistics, gradients and the global RNG as they were', () => {
  const { instance, step } = rotationStep(16);
  const state = () => new Map([...instance.modules.backbone.stateDict()].map(([k, v]) => [k, v.clone()]));
  const before = state();
  torch.manualSeed(11);
  const expected = torch.rand([4]).toArray();
  torch.manualSeed(11);
  step(3);
  assert.deepEqual(torch.rand([4]).toArray(), expected);
  for (const [name, value] of state()) assert.ok(value.equal(before.get(name)!), `${name} changed`);
  assert.ok(instance.modules.backbone.parameters().every((p) => p.grad === undefined));
});

test('a step that would not fit names its size, the memory free, and the flags to change', () => {
  const estimate: StepMemoryEstimate = {
    batchSize: 128,
    stepBytes: 24 * 2 ** 30,
    perItemBytes: 0.1875 * 2 ** 30,
    fixedBytes: 0,
    probes: [],
    residentBytes: 0,
    method: 'peak-rss',
  };
  const available = { bytes: 16 * 2 ** 30, source: 'available system memory' };
  assert.throws(
    () => checkStepMemory(estimate, { imageSize: 64, available }),
    /^Error: a training step at batch size 128 would need about 24\.0 GiB of memory, but 16\.0 GiB is free \(available system memory\): lower --batch-size to 76 or less, or --image-size \(now 64\)$/,
  );
  assert.throws(
    () => checkStepMemory({ ...estimate, fixedBytes: 20 * 2 ** 30 }, { imageSize: 64, available }),
    /even a batch of 1 does not fit/,
  );
  checkStepMemory({ ...estimate, stepBytes: 2 ** 30 }, { imageSize: 64, available });
  const free = availableMemory();
  assert.ok(free.bytes > 0 && free.bytes <= totalmem(), `${free.bytes} bytes from ${free.source}`);
});
