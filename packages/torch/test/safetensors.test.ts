// The safetensors reader and writer: round trips, a file written by Python, corrupt files,
// atomic replacement, and Module state dicts.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/index.js';
import type { DType, Tensor } from '../src/index.js';

const { nn, safetensors } = torch;

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures');
const dir = mkdtempSync(join(tmpdir(), 'pretext-safetensors-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Bytes of a safetensors file with the given header object and data. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerLength?: number): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(headerLength ?? json.length));
  return Buffer.concat([head, json, data]);
}

function sameTensor(a: Tensor, b: Tensor, label: string): void {
  assert.equal(a.dtype, b.dtype, `${label}: dtype`);
  assert.deepEqual(a.shape, b.shape, `${label}: shape`);
  assert.deepEqual(Buffer.from(a.toTypedArray().buffer), Buffer.from(b.toTypedArray().buffer), `${label}: bytes`);
}

const allDtypes: DType[] = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'];

describe('round trip', () => {
  test('every dtype, a scalar, an empty and a non-contiguous tensor, with metadata', () =>
    torch.tidy(() => {
      const source = new Map<string, Tensor>();
      const values = [0, 1.5, -2, 3.25, 100, -7];
      for (const dtype of allDtypes) {
        const base = dtype === 'uint8' ? values.map(Math.abs) : values;
        source.set(`t_${dtype}`, torch.tensor(base, { dtype: 'float32' }).reshape([2, 3]).to(dtype));
      }
      source.set('scalar', torch.tensor(4.5));
      source.set('empty', torch.zeros([0, 4], 'int32'));
      source.set('transposed', torch.arange(0, 12, 1, 'float64').reshape([3, 4]).t());
      source.set('big_int64', torch.tensor([2 ** 53 + 0, -(2 ** 40)], { dtype: 'int64' }));
      const path = join(dir, 'all.safetensors');
      safetensors.save(path, source, { note: 'round trip', step: '7' });
      const loaded = safetensors.load(path);
      assert.deepEqual(loaded.metadata, { note: 'round trip', step: '7' });
      assert.deepEqual([...loaded.tensors.keys()], [...source.keys()]);
      for (const [name, t] of source) sameTensor(loaded.tensors.get(name)!, t.contiguous(), name);
      assert.deepEqual(loaded.tensors.get('transposed')!.tolist(), [
        [0, 4, 8],
        [1, 5, 9],
        [2, 6, 10],
        [3, 7, 11],
      ]);
      // The data section starts 8-byte aligned, as the format recommends.
      const bytes = readFileSync(path);
      assert.equal(Number(bytes.readBigUInt64LE(0)) % 8, 0);
    }));

  test('serialize and deserialize in memory; a plain object works as the map', () =>
    torch.tidy(() => {
      const bytes = safetensors.serialize({ a: torch.tensor([1, 2, 3]), b: torch.ones([2, 2], 'float16') });
      const { tensors, metadata } = safetensors.deserialize(bytes);
      assert.deepEqual(metadata, {});
      assert.deepEqual(tensors.get('a')!.toArray(), [1, 2, 3]);
      assert.equal(tensors.get('b')!.dtype, 'float16');
      assert.deepEqual(tensors.get('b')!.toDtype('float32').toArray(), [1, 1, 1, 1]);
    }));

  test("'__metadata__' cannot name a tensor", () =>
    torch.tidy(() => {
      assert.throws(() => safetensors.serialize({ __metadata__: torch.ones([1]) }), /'__metadata__' is reserved/);
    }));
});

describe('a file written by Python (make_fixtures.py)', () => {
  test('reads back to the values Python wrote', () =>
    torch.tidy(() => {
      const path = join(fixtures, 'dtypes.safetensors');
      const { tensors, metadata } = safetensors.load(path);
      assert.deepEqual(metadata, { written_by: 'make_fixtures.py', format: 'pt' });
      const get = (k: string) => tensors.get(k)!;
      assert.equal(get('f32').dtype, 'float32');
      assert.deepEqual(get('f32').toArray(), [0.5, -1.25, 3, Math.fround(1e-3), -2.5e5, 7]);
      assert.equal(get('f64').dtype, 'float64');
      assert.deepEqual(get('f64').toArray(), [0.5 / 3, -1.25 / 3, 3 / 3, 1e-3 / 3, -2.5e5 / 3, 7 / 3]);
      assert.equal(get('f16').dtype, 'float16');
      assert.deepEqual(get('f16').toDtype('float32').toArray(), [0.5, -1.25, 3, 65504]);
      assert.equal(get('bf16').dtype, 'bfloat16');
      assert.deepEqual(get('bf16').toDtype('float32').toArray().slice(0, 3), [0.5, -1.25, 3]);
      assert.ok(Math.abs(get('bf16').toDtype('float32').toArray()[3] / 1e30 - 1) < 1e-2);
      assert.equal(get('i64').dtype, 'int64');
      assert.deepEqual(get('i64').toTypedArray(), BigInt64Array.from([-(2n ** 40n), -1n, 0n, 2n ** 40n + 7n]));
      assert.deepEqual([get('i32').dtype, ...get('i32').toArray()], ['int32', -(2 ** 31), -1, 0, 2 ** 31 - 1]);
      assert.deepEqual([get('i16').dtype, ...get('i16').toArray()], ['int16', -32768, -1, 0, 32767]);
      assert.deepEqual([get('i8').dtype, ...get('i8').toArray()], ['int8', -128, -1, 0, 127]);
      assert.deepEqual([get('u8').dtype, ...get('u8').toArray()], ['uint8', 0, 1, 128, 255]);
      assert.deepEqual([get('bool').dtype, ...get('bool').toArray()], ['bool', 1, 0, 0, 1]);
      assert.deepEqual(get('scalar').shape, []);
      assert.equal(get('scalar').item(), 2.5);
      assert.deepEqual(get('empty').shape, [0, 3]);
    }));

  test('our writer produces the same bytes as the independent Python writer', () =>
    torch.tidy(() => {
      const path = join(fixtures, 'dtypes.safetensors');
      const { tensors, metadata } = safetensors.load(path);
      assert.deepEqual(safetensors.serialize(tensors, metadata), readFileSync(path));
    }));
});

describe('corrupt files give errors that name the file and the tensor', () => {
  const good = () => safetensors.serialize({ weight: torch.arange(0, 6, 1, 'float32').reshape([2, 3]) });
  const expectError = (bytes: Uint8Array, pattern: RegExp, name = 'bad.safetensors') => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    assert.throws(
      () => safetensors.load(path),
      (e: Error) => {
        assert.ok(e.message.includes(path), `message should name the file: ${e.message}`);
        assert.match(e.message, pattern);
        return true;
      },
    );
  };

  test('truncated data', () =>
    torch.tidy(() => {
      const bytes = good();
      expectError(bytes.subarray(0, bytes.length - 5), /tensor 'weight' data ends at 24 but only 19 data bytes exist \(truncated file\?\)/);
    }));

  test('truncated inside the header, and shorter than the length field', () =>
    torch.tidy(() => {
      expectError(good().subarray(0, 20), /header length \d+ runs past the end of the file \(20 bytes\)/);
      expectError(good().subarray(0, 5), /file is 5 bytes, too short/);
    }));

  test('bad JSON, and a header that is not an object', () => {
    expectError(rawFile('{"weight": {"dtype": '), /bad JSON header/);
    expectError(rawFile('[1, 2]'), /header is not a JSON object/);
  });

  test('header length past the end of the file', () => {
    expectError(rawFile({}, new Uint8Array(0), 1000), /header length 1000 runs past the end/);
    expectError(rawFile({}, new Uint8Array(0), Number.MAX_SAFE_INTEGER), /runs past the end/);
  });

  test('dtype, shape and offset mismatches', () => {
    const data = new Uint8Array(24);
    expectError(
      rawFile({ w: { dtype: 'F64', shape: [2, 3], data_offsets: [0, 24] } }, data),
      /tensor 'w' holds 24 bytes but float64 \[2,3\] needs 48/,
    );
    expectError(
      rawFile({ w: { dtype: 'F32', shape: [2, 4], data_offsets: [0, 24] } }, data),
      /tensor 'w' holds 24 bytes but float32 \[2,4\] needs 32/,
    );
    expectError(rawFile({ w: { dtype: 'F32', shape: [2, 3], data_offsets: [8, 32] } }, data), /tensor 'w' data ends at 32/);
    expectError(rawFile({ w: { dtype: 'F32', shape: [2, 3], data_offsets: [24, 0] } }, data), /tensor 'w' has bad data_offsets \[24,0\]/);
    expectError(rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } }, data), /tensor 'w' has bad data_offsets \[-4,0\]/);
    expectError(rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [0.5, 4.5] } }, data), /tensor 'w' has bad data_offsets/);
    expectError(rawFile({ w: { dtype: 'F32', shape: [2, -3], data_offsets: [0, 24] } }, data), /tensor 'w' has a bad shape \[2,-3\]/);
    expectError(rawFile({ w: { dtype: 'C64', shape: [3], data_offsets: [0, 24] } }, data), /tensor 'w' has unsupported dtype "C64"/);
    expectError(rawFile({ w: { shape: [3], data_offsets: [0, 12] } }, data), /tensor 'w' has unsupported dtype undefined/);
  });

  test('a bad tensor after good ones frees the good ones and loads nothing', () =>
    torch.tidy(() => {
      const data = new Uint8Array(8);
      const bytes = rawFile(
        { ok: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, broken: { dtype: 'F32', shape: [3], data_offsets: [4, 8] } },
        data,
      );
      assert.throws(
        () => safetensors.deserialize(bytes, 'memory'),
        /safetensors memory: tensor 'broken' holds 4 bytes but float32 \[3\] needs 12/,
      );
    }));
});

describe('atomic writes', () => {
  test('a crash before the rename leaves the existing file intact', () =>
    torch.tidy(() => {
      const path = join(dir, 'model.safetensors');
      safetensors.save(path, { w: torch.tensor([1, 2, 3], { dtype: 'float32' }) });
      const original = readFileSync(path);
      // What a crash in the middle of save() leaves behind: a partial temporary file, never renamed.
      const partial = safetensors.serialize({ w: torch.tensor([9, 9, 9, 9, 9], { dtype: 'float32' }) });
      writeFileSync(safetensors.atomicTempPath(path), partial.subarray(0, partial.length - 7));
      assert.deepEqual(readFileSync(path), original);
      assert.deepEqual(safetensors.load(path).tensors.get('w')!.toArray(), [1, 2, 3]);
      // The next save overwrites the stale temporary file and replaces the target whole.
      safetensors.save(path, { w: torch.tensor([4, 5], { dtype: 'float32' }) });
      assert.deepEqual(safetensors.load(path).tensors.get('w')!.toArray(), [4, 5]);
      assert.equal(existsSync(safetensors.atomicTempPath(path)), false);
    }));

  test('a failed write leaves the existing file intact and no temporary file', () =>
    torch.tidy(() => {
      const path = join(dir, 'kept.safetensors');
      safetensors.save(path, { w: torch.tensor([1, 2], { dtype: 'float32' }) });
      const original = readFileSync(path);
      const disposed = torch.ones([2]);
      disposed.dispose();
      assert.throws(() => safetensors.save(path, { w: disposed }), /disposed/);
      assert.deepEqual(readFileSync(path), original);
      // A rename that fails (the target is a non-empty directory) removes the temporary file.
      const blocked = join(dir, 'blocked.safetensors');
      mkdirSync(join(blocked, 'inside'), { recursive: true });
      assert.throws(() => safetensors.save(blocked, { w: torch.ones([1]) }));
      assert.deepEqual(
        readdirSync(dir).filter((f) => f.endsWith('.tmp')),
        [],
      );
    }));
});

class Net extends nn.Module {
  conv = new nn.Conv2d(3, 4, 3, { padding: 1 });
  bn = new nn.BatchNorm2d(4);
  head = new nn.Linear(4, 2);
  forward(x: Tensor): Tensor {
    return this.head.forward(F.adaptiveAvgPool2d(this.bn.forward(this.conv.forward(x)).relu(), 1).flatten(1));
  }
}
const F = nn.functional;

describe('Module state dicts', () => {
  test('save and load round trip, buffers included', () =>
    torch.tidy(() => {
      torch.manualSeed(1);
      const a = new Net();
      const x = torch.randn([4, 3, 6, 6]);
      a.forward(x); // moves the batch-norm running stats off their initial values
      a.forward(x);
      const path = join(dir, 'net.safetensors');
      safetensors.save(path, a.stateDict());
      torch.manualSeed(2);
      const b = new Net();
      assert.ok(!a.conv.weight.equal(b.conv.weight));
      const { missing, unexpected } = b.loadStateDict(safetensors.load(path).tensors);
      assert.deepEqual([missing, unexpected], [[], []]);
      const keys = [...a.stateDict().keys()];
      assert.deepEqual(keys, [
        'conv.weight',
        'conv.bias',
        'bn.weight',
        'bn.bias',
        'head.weight',
        'head.bias',
        'bn.running_mean',
        'bn.running_var',
        'bn.num_batches_tracked',
      ]);
      for (const [k, t] of a.stateDict()) sameTensor(b.stateDict().get(k)!, t, k);
      assert.equal(b.bn.buffer('num_batches_tracked').item(), 2);
      a.eval();
      b.eval();
      assert.ok(a.forward(x).equal(b.forward(x)));
    }));

  test('loadStateDict copies values: later changes to the source do not leak in', () =>
    torch.tidy(() => {
      const a = new nn.Linear(2, 2);
      const b = new nn.Linear(2, 2);
      b.loadStateDict(a.stateDict());
      torch.noGrad(() => a.weight.add_(1));
      assert.ok(!a.weight.equal(b.weight));
    }));

  test('strict loading names missing, unexpected and mis-shaped keys', () =>
    torch.tidy(() => {
      const net = new Net();
      const state = new Map(net.stateDict());
      state.delete('bn.running_var');
      state.delete('head.bias');
      state.set('head.extra', torch.ones([1]));
      state.set('conv.weight', torch.ones([4, 3, 5, 5]));
      assert.throws(
        () => net.loadStateDict(state),
        (e: Error) => {
          assert.match(e.message, /^loadStateDict for Net: /);
          assert.match(e.message, /missing keys: head\.bias, bn\.running_var/);
          assert.match(e.message, /unexpected keys: head\.extra/);
          assert.match(e.message, /shape mismatch: conv\.weight \(expected \[4,3,3,3\], got \[4,3,5,5\]\)/);
          return true;
        },
      );
      // Not strict: missing and unexpected keys are reported, shape mismatches still throw.
      state.set('conv.weight', torch.ones([4, 3, 3, 3]));
      const before = net.head.bias!.clone();
      const report = net.loadStateDict(state, false);
      assert.deepEqual(report, { missing: ['head.bias', 'bn.running_var'], unexpected: ['head.extra'] });
      assert.ok(net.conv.weight.equal(torch.ones([4, 3, 3, 3])));
      assert.ok(net.head.bias!.equal(before));
      state.set('bn.weight', torch.ones([5]));
      assert.throws(() => net.loadStateDict(state, false), /shape mismatch: bn\.weight \(expected \[4\], got \[5\]\)/);
    }));
});
