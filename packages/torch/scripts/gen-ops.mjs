// Generates the N-API bindings (gen/ops_gen.cc) and their TypeScript surface (src/generated/*.ts)
// from the signatures in native/ops.mjs.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { functionOps, nnOps, tensorOps } from '../native/ops.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export function parseSignature(sig) {
  const m = /^(\w+)\((.*)\)\s*->\s*(\S+)$/.exec(sig);
  if (!m) throw new Error(`bad signature: ${sig}`);
  const [, name, argText, ret] = m;
  const args = argText
    ? argText.split(/,\s*(?![^[]*\])/).map((text) => {
        const am = /^(\S+)\s+(\w+)(?:=(.*))?$/.exec(text.trim());
        if (!am) throw new Error(`bad argument '${text}' in ${sig}`);
        const [, type, argName, def] = am;
        return { type, name: argName, def };
      })
    : [];
  return { name, args, ret };
}

const camel = (s) => s.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());

// C++: how each argument type is read, and how a default is written.
const reader = {
  Tensor: 'tensor',
  'Tensor?': 'optTensor',
  'Tensor[]': 'tensors',
  int: 'int64',
  'int?': 'optInt64',
  'int[]': 'ints',
  'int[]?': 'optInts',
  float: 'float64',
  'float?': 'optFloat64',
  bool: 'boolean',
  Scalar: 'scalar',
  'Scalar?': 'optScalar',
  ScalarType: 'dtype',
  'ScalarType?': 'optDtype',
  str: 'string',
  'str?': 'optString',
  Device: 'device',
  Reduction: 'reduction',
  'Generator?': 'generator',
};

function cppDefault(type, def) {
  if (type === 'int[]') return `std::vector<int64_t>{${def.replace(/[[\]]/g, '')}}`;
  if (type === 'Scalar') return `at::Scalar(${/^-?\d+$/.test(def) ? `int64_t(${def})` : def})`;
  if (type === 'ScalarType') return `at::k${def}`;
  if (type === 'str') return `std::string(${def})`;
  if (type === 'int') return `int64_t(${def})`;
  if (type === 'float') return `double(${def})`;
  return def;
}

function cppBinding({ name, args, ret }, call) {
  const lines = [];
  const operands = args.filter((a) => a.type === 'Operand');
  args.forEach((a, i) => {
    if (a.type === 'Operand') return;
    const read = `a.${reader[a.type]}(${i}, "${a.name}")`;
    if (!reader[a.type]) throw new Error(`${name}: unknown type ${a.type}`);
    const ref = a.type === 'Tensor' ? 'auto&' : 'auto';
    const value = a.def !== undefined ? `a.absent(${i}) ? ${cppDefault(a.type, a.def)} : ${read}` : read;
    lines.push(`    ${ref} ${a.name} = ${value};`);
  });
  const expr = call ?? `at::${name}(${args.map((a) => a.name).join(', ')})`;
  const body = ret === 'void' || ret === 'self' ? `(void)(${expr}); return env.Undefined();` : `return ToJs(env, ${expr});`;
  if (operands.length === 0) {
    lines.push(`    ${body}`);
  } else {
    if (operands.length > 1) throw new Error(`${name}: at most one Operand`);
    const op = operands[0];
    const i = args.indexOf(op);
    lines.push(`    auto run = [&](const auto& ${op.name}) -> Napi::Value { ${body} };`);
    lines.push(`    if (a.isTensor(${i})) return run(a.tensor(${i}, "${op.name}"));`);
    lines.push(`    return run(a.scalar(${i}, "${op.name}"));`);
  }
  return [
    `static Napi::Value op_${name}(const Napi::CallbackInfo& info) {`,
    `  Args a{info, "${name}"};`,
    `  Napi::Env env = info.Env();`,
    `  return Guard(info, a.op, [&]() -> Napi::Value {`,
    ...lines,
    `  });`,
    `}`,
  ].join('\n');
}

// TypeScript: the public type of each argument, how it is passed down, and how results come back.
const tsType = {
  Tensor: 'Tensor',
  'Tensor?': 'Tensor | null',
  'Tensor[]': 'Tensor[]',
  Operand: 'Tensor | number | boolean',
  int: 'number',
  'int?': 'number | null',
  'int[]': 'number | number[]',
  'int[]?': 'number | number[] | null',
  float: 'number',
  'float?': 'number | null',
  bool: 'boolean',
  Scalar: 'number | boolean',
  'Scalar?': 'number | boolean | null',
  ScalarType: 'DType',
  'ScalarType?': 'DType | null',
  str: 'string',
  'str?': 'string | null',
  Device: 'DeviceLike',
  Reduction: 'Reduction',
  'Generator?': 'Generator | null',
};
const nativeType = {
  Tensor: 'Handle',
  'Tensor?': 'Handle | undefined',
  'Tensor[]': 'Handle[]',
  Operand: 'Handle | number | boolean',
  ScalarType: 'number',
  'ScalarType?': 'number | undefined',
  Device: 'string | undefined',
  'Generator?': 'GeneratorHandle | undefined',
};
function passDown(a, expr, op) {
  switch (a.type) {
    case 'Tensor':
    case 'Tensor?':
      return `handleOf(${expr})`;
    case 'Tensor[]':
      return `handles(${expr})`;
    case 'Operand':
      return `operand(${expr})`;
    case 'ScalarType':
    case 'ScalarType?':
      return `dtypeCode(${expr}, '${op}')`;
    case 'Device':
      return `deviceName(${expr})`;
    case 'Generator?':
      return `generatorHandleOf(${expr})`;
    default:
      return `${expr} ?? undefined`;
  }
}
const tsReturn = {
  Tensor: ['Tensor', (r) => `wrap(${r})`],
  'Tensor?': ['Tensor | undefined', (r) => `wrapOptional(${r})`],
  'Tensor[]': ['Tensor[]', (r) => `wrapAll(${r})`],
  int: ['number', (r) => r],
  float: ['number', (r) => r],
  'int[]': ['number[]', (r) => r],
  bool: ['boolean', (r) => r],
  str: ['string', (r) => r],
  void: ['void', (r) => r],
};
const nativeReturn = {
  Tensor: 'Handle',
  'Tensor?': 'Handle | undefined',
  'Tensor[]': 'Handle[]',
  int: 'number',
  float: 'number',
  'int[]': 'number[]',
  bool: 'boolean',
  str: 'string',
  void: 'void',
  self: 'void',
};

function tsParams(args) {
  // A parameter is optional when it and everything after it may be left out.
  let optionalFrom = args.length;
  for (let i = args.length - 1; i >= 0; i--) {
    const a = args[i];
    if (a.def !== undefined || a.type.endsWith('?') || a.type === 'Device' || a.type === 'Reduction') optionalFrom = i;
    else break;
  }
  return args.map((a, i) => `${camel(a.name)}${i >= optionalFrom ? '?' : ''}: ${tsType[a.type]}`);
}

const entries = (table, group) => table.map(([sig, call]) => ({ ...parseSignature(sig), call, group }));
const all = [...entries(tensorOps, 'tensor'), ...entries(functionOps, 'function'), ...entries(nnOps, 'nn')];

const cpp = [
  '// Generated by scripts/gen-ops.mjs from native/ops.mjs. Do not edit.',
  '#include "shim.h"',
  '',
  'namespace shim {',
  'using namespace at;',
  ...all.map((op) => cppBinding(op, op.call)),
  '',
  'void RegisterGeneratedOps(Napi::Env env, Napi::Object exports) {',
  ...all.map((op) => `  exports.Set("${op.name}", Napi::Function::New(env, op_${op.name}, "${op.name}"));`),
  '}',
  '}  // namespace shim',
  '',
].join('\n');

const nativeTs = [
  '// Generated by scripts/gen-ops.mjs from native/ops.mjs. Do not edit.',
  "import type { GeneratorHandle, Handle } from '../handle.js';",
  '',
  'export interface GeneratedNative {',
  ...all.map(({ name, args, ret }) => {
    const params = args.map((a) => `${a.name}?: ${nativeType[a.type] ?? 'unknown'}`);
    return `  ${name}(${params.join(', ')}): ${nativeReturn[ret]};`;
  }),
  '}',
  '',
].join('\n');

const header = [
  '// Generated by scripts/gen-ops.mjs from native/ops.mjs. Do not edit.',
  '/* eslint-disable */',
  "import type { DType, DeviceLike, Reduction } from '../dtype.js';",
  "import type { Generator } from '../generator.js';",
  "import { deviceName, dtypeCode, generatorHandleOf, handleOf, handles, native, operand, wrap, wrapAll, wrapOptional } from '../handle.js';",
  "import type { Tensor } from '../tensor.js';",
  '',
];

// Free functions cannot take reserved words as names.
const reservedWords = { var: 'variance' };

function tsFunction({ name, args, ret }, asMethod) {
  const params = tsParams(args);
  const passed = args.map((a, i) => (asMethod && i === 0 ? 'this.handle' : passDown(a, camel(a.name), name)));
  const callExpr = `native.${name}(${passed.join(', ')})`;
  if (ret === 'self') {
    return `  ${camel(name)}(${params.slice(1).join(', ')}): this {\n    ${callExpr};\n    return this;\n  }`;
  }
  const [type, conv] = tsReturn[ret];
  const sigParams = asMethod ? params.slice(1) : params;
  const prefix = asMethod ? '  ' : 'export function ';
  const fnName = asMethod ? camel(name) : (reservedWords[name] ?? camel(name));
  const indent = asMethod ? '    ' : '  ';
  return `${prefix}${fnName}(${sigParams.join(', ')}): ${type} {\n${indent}return ${conv(callExpr)};\n${asMethod ? '  ' : ''}}`;
}

// Ops named with a leading underscore back Tensor's getters; they are not public methods.
const methods = all.filter((op) => op.group === 'tensor' && !op.name.startsWith('_'));
const tensorOpsTs = [
  ...header,
  '/** Methods generated from the op table; Tensor extends this. */',
  'export abstract class TensorOps {',
  '  abstract get handle(): import("../handle.js").Handle;',
  ...methods.map((op) => tsFunction(op, true)),
  '}',
  '',
].join('\n');

const functionsTs = [
  ...header,
  ...all.filter((op) => op.ret !== 'self' && !op.name.startsWith('_')).map((op) => tsFunction(op, false)),
  '',
].join('\n');

// Unchanged outputs keep their mtime, so make does not recompile them.
const write = (path, text) => {
  const full = join(root, path);
  mkdirSync(dirname(full), { recursive: true });
  if (!existsSync(full) || readFileSync(full, 'utf8') !== text) writeFileSync(full, text);
};
write('gen/ops_gen.cc', cpp);
write('src/generated/native.ts', nativeTs);
write('src/generated/tensor-ops.ts', tensorOpsTs);
write('src/generated/functions.ts', functionsTs);
console.log(`gen-ops: ${all.length} ops`);
