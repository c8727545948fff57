import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as torch from '../src/index.js';

test('creation infers dtypes as PyTorch does', () => {
  assert.equal(torch.arange(0, 5).dtype, 'int64');
  assert.deepEqual(torch.arange(0, 5).toArray(), [0, 1, 2, 3, 4]);
  assert.equal(torch.arange(0, 1, 0.25).dtype, 'float32');
  assert.deepEqual(torch.arange(0, 1, 0.25).toArray(), [0, 0.25, 0.5, 0.75]);
  assert.equal(torch.arange(0, 3, 1, 'float64').dtype, 'float64');
  assert.equal(torch.tensor([1, 2]).dtype, 'int64');
  assert.equal(torch.tensor([1.5, 2]).dtype, 'float32');
  assert.equal(torch.tensor([true, false]).dtype, 'bool');
  assert.deepEqual(
    torch.tensor(
      [
        [1, 2],
        [3, 4],
      ],
      { dtype: 'float64' },
    ).shape,
    [2, 2],
  );
  assert.equal(torch.zeros([2]).dtype, 'float32');
  assert.equal(torch.randint(0, 3, [4]).dtype, 'int64');
});
