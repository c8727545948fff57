// The supervised baseline trains under the precision the pretext rows use.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randomBackbone, trainSupervised } from '../../src/eval/finetune.js';
import { randomStore } from './fixtures.js';

test('the supervised baseline under bf16 autocast trains, and computes otherwise than float32', async () => {
  const store = randomStore(64, 16, 3, 4);
  const run = async (precision: 'fp32' | 'bf16') => {
    const result = await trainSupervised(randomBackbone('resnet18-small', 3, 0), store, {
      ...{ epochs: 2, batchSize: 16, augment: null, precision, seed: 0 },
    });
    const weights = result.classifier.parameters().map((p) => Array.from(p.toArray() as number[]));
    return { losses: result.losses, weights };
  };
  const [fp32, again, bf16] = [await run('fp32'), await run('fp32'), await run('bf16')];
  for (const r of [fp32, bf16]) assert.ok(r.losses.every(Number.isFinite), JSON.stringify(r.losses));
  assert.deepEqual(again.weights, fp32.weights, 'float32 is deterministic for a seed');
  assert.notDeepEqual(bf16.weights, fp32.weights, 'bf16 autocast changes the arithmetic');
  // bfloat16 keeps 8 bits of mantissa: the first epoch's loss agrees to about 1%.
  assert.ok(Math.abs(bf16.losses[0] - fp32.losses[0]) < 0.05 * fp32.losses[0], `${bf16.losses[0]} vs ${fp32.losses[0]}`);
});
