import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { train } from '../../src/train/trainer.js';
import { tempDir } from '../temp.js';

const skip = existsSync('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz')
  ? false
  : 'Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)';

test('rotation pretraining lowers the loss on a real slice and logs every epoch', { skip, timeout: 180_000 }, async () => {
  const out = tempDir('train');
  const lines: string[] = [];
  const result = await train(
    {
      task: 'rotation',
      data: 'fashion-mnist',
      limit: 384,
      backbone: 'resnet18-small',
      batchSize: 32,
      epochs: 4,
      optimizer: { name: 'sgd', lr: 0.05, momentum: 0.9 },
      schedule: { name: 'constant' },
      logEverySteps: 4,
      out,
    },
    { progress: false, log: (l) => lines.push(l) },
  );
  assert.equal(result.steps, 48);
  const [first, last] = [result.history[0].metrics, result.history.at(-1)!.metrics];
  assert.ok(last.loss < first.loss * 0.8, `loss ${first.loss} -> ${last.loss}`);
  assert.ok(last.acc > 0.5, `pretext accuracy ${last.acc} (chance 0.25)`);
  const records = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(records.filter((r) => r.type === 'epoch').length, 4);
  assert.equal(records.filter((r) => r.type === 'step').length, 12);
  assert.ok(records.every((r) => typeof r.time === 'string'));
  assert.ok(lines.some((l) => /^epoch 4\/4 +loss/.test(l)));
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(config.optimizer.lr, 0.05);
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'data.json'), 'utf8')).channels, 1);
});
