// A run's epoch records as readers see them: one per epoch, the resumed session's repeat winning,
// a line torn by a kill skipped.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readEpochRecords } from '../../src/util/run-files.js';
import { tempDir } from '../temp.js';

test('readEpochRecords keeps the last record of each epoch in epoch order and skips torn lines', () => {
  const run = tempDir('run-files');
  const lines = [
    { type: 'step', epoch: 1, step: 2, loss: 3 },
    { type: 'epoch', epoch: 1, steps: 4, metrics: { loss: 2 } },
    { type: 'epoch', epoch: 2, steps: 8, metrics: { loss: 1.5 } },
    { type: 'end', stopped: 'signal' },
    // The resumed session repeats epoch 2 from its last checkpoint.
    { type: 'epoch', epoch: 2, steps: 8, metrics: { loss: 1.25 } },
    { type: 'epoch', epoch: 3, steps: 10, partial: true, metrics: { loss: 1 } },
  ].map((r) => JSON.stringify(r));
  writeFileSync(join(run, 'metrics.jsonl'), [...lines, '{"type":"epoch","epo'].join('\n'));
  const epochs = readEpochRecords(run);
  assert.deepEqual(
    epochs.map((e) => [e.epoch, e.metrics.loss, e.partial ?? false]),
    [
      [1, 2, false],
      [2, 1.25, false],
      [3, 1, true],
    ],
  );
  assert.deepEqual(readEpochRecords(join(run, 'missing')), []);
});
