// CPU autocast: matmuls and convolutions run in bfloat16 inside the scope, the state before it
// comes back after (also on errors and when nested), and float32 parameters get float32 gradients.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as torch from '../src/index.js';

const { nn } = torch;

test('conv and linear compute in bfloat16 inside autocast and in float32 outside', () => {
  torch.manualSeed(0);
  const conv = new nn.Conv2d(3, 4, 3, { padding: 1 });
  const linear = new nn.Linear(4, 2);
  const x = torch.randn([2, 3, 6, 6]);
  const [inside, logits] = torch.autocast('cpu', 'bfloat16', () => {
    const y = conv.forward(x);
    return [y, linear.forward(y.mean([2, 3]))];
  });
  assert.equal(inside.dtype, 'bfloat16');
  assert.equal(logits.dtype, 'bfloat16');
  const reference = conv.forward(x);
  assert.equal(reference.dtype, 'float32');
  // bfloat16 keeps 8 bits of mantissa: the results agree to about 1%.
  const error = inside.float().sub(reference).abs().max().item();
  assert.ok(error < 0.05 * reference.abs().max().item(), `max error ${error}`);
});

test('gradients of float32 parameters stay float32 and match the float32 ones closely', () => {
  torch.manualSeed(1);
  const linear = new nn.Linear(8, 3);
  const x = torch.randn([16, 8]);
  const target = torch.randint(0, 3, [16]);
  const loss = torch.autocast('cpu', 'bfloat16', () => nn.functional.crossEntropy(linear.forward(x), target));
  assert.equal(loss.dtype, 'float32', 'cross-entropy runs in float32 under autocast');
  loss.backward();
  const mixed = linear.weight.grad!.clone();
  assert.equal(mixed.dtype, 'float32');
  linear.weight.grad = undefined;
  nn.functional.crossEntropy(linear.forward(x), target).backward();
  const exact = linear.weight.grad!;
  assert.ok(mixed.sub(exact).abs().max().item() < 0.02 * exact.abs().max().item() + 1e-3);
});

test('nesting and errors restore the state before the scope', () => {
  const linear = new nn.Linear(4, 4);
  const x = torch.randn([2, 4]);
  assert.throws(
    () =>
      torch.autocast('cpu', 'bfloat16', () => {
        throw new Error('inside');
      }),
    /inside/,
  );
  assert.equal(linear.forward(x).dtype, 'float32', 'an error inside leaves autocast off');
  torch.autocast('cpu', 'bfloat16', () => {
    torch.autocast('cpu', 'bfloat16', () => linear.forward(x));
    assert.equal(linear.forward(x).dtype, 'bfloat16', 'the outer scope is still on after an inner one');
  });
  assert.equal(linear.forward(x).dtype, 'float32');
});

test('native bfloat16 is read from the CPU flags: AVX512-BF16 or AMX, not plain AVX512', () => {
  const cpuinfo = (flags: string) => `processor\t: 0\nmodel name\t: test\nflags\t\t: ${flags}\n\nprocessor\t: 1\nflags\t\t: ${flags}\n`;
  assert.equal(torch.cpuinfoHasBf16(cpuinfo('fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni')), true);
  assert.equal(torch.cpuinfoHasBf16(cpuinfo('fpu sse2 avx2 amx_tile amx_bf16 amx_int8')), true);
  assert.equal(torch.cpuinfoHasBf16(cpuinfo('fpu sse2 avx2 avx512f avx512bw avx512_vnni')), false);
  // A flag's name inside another's does not count, nor does a line other than flags.
  assert.equal(torch.cpuinfoHasBf16('model name\t: avx512_bf16 special\nflags\t\t: avx512_bf16x avx2\n'), false);
  assert.equal(torch.cpuinfoHasBf16(''), false);
  assert.equal(typeof torch.cpu.isBf16Supported(), 'boolean');
});
