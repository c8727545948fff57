// Minimal Python unpickler for data files (protocols 2-5, in-band buffers): enough for the CIFAR python batches,
// i.e. dicts, lists, tuples, numbers, str/bytes and numpy arrays. Nothing is ever executed: a
// global reference becomes a PickleGlobal and a call a PickleCall holding its arguments and state.
//
// Python 2 `str` values (BINSTRING) come back as bytes (Uint8Array), like Python 3's
// `pickle.load(f, encoding='bytes')`. Dict keys are converted to strings (bytes as latin1).

export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** A call of a global (REDUCE / NEWOBJ) and the state BUILD gave it. */
export class PickleCall {
  state: unknown = undefined;
  constructor(
    readonly callable: PickleGlobal,
    readonly args: unknown[],
  ) {}
}

export type PickleDict = Map<string, unknown>;

const MARK = Symbol('mark');

/** A pickled str, or bytes read as latin1, as a string. */
export const pickleText = (value: unknown): string => (value instanceof Uint8Array ? Buffer.from(value).toString('latin1') : String(value));

/** Decodes one pickled object. Byte strings are views into `bytes`. */
export function unpickle(bytes: Uint8Array): unknown {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let pos = 0;

  const u8 = (): number => buffer[pos++];
  const take = (length: number): Buffer => {
    if (pos + length > buffer.length) throw new Error('truncated pickle');
    const slice = buffer.subarray(pos, pos + length);
    pos += length;
    return slice;
  };
  const u32 = (): number => take(4).readUInt32LE(0);
  const u64 = (): number => Number(take(8).readBigUInt64LE(0));
  const line = (): string => {
    const end = buffer.indexOf(0x0a, pos);
    if (end < 0) throw new Error('truncated pickle');
    const text = buffer.toString('latin1', pos, end);
    pos = end + 1;
    return text;
  };
  const pop = (): unknown => {
    if (stack.length === 0) throw new Error('pickle stack underflow');
    return stack.pop();
  };
  const popMark = (): unknown[] => {
    const mark = stack.lastIndexOf(MARK);
    if (mark < 0) throw new Error('pickle MARK not found');
    const items = stack.splice(mark);
    return items.slice(1);
  };
  const top = (): unknown => stack[stack.length - 1];
  const call = (callable: unknown, args: unknown): unknown => {
    if (!(callable instanceof PickleGlobal) || !Array.isArray(args)) throw new Error('unsupported pickle call');
    // Python 3 pickles bytes for protocol 2 as _codecs.encode(text, 'latin1').
    if (callable.qualifiedName === '_codecs.encode' && typeof args[0] === 'string') return Buffer.from(args[0], 'latin1');
    return new PickleCall(callable, args);
  };
  const setItems = (target: unknown, items: unknown[]): void => {
    if (!(target instanceof Map)) throw new Error('pickle SETITEMS on a non-dict');
    for (let i = 0; i + 1 < items.length; i += 2) target.set(pickleText(items[i]), items[i + 1]);
  };
  const append = (target: unknown, items: unknown[]): void => {
    if (!Array.isArray(target)) throw new Error('pickle APPENDS on a non-list');
    target.push(...items);
  };

  for (;;) {
    if (pos >= buffer.length) throw new Error('truncated pickle (no STOP)');
    const opcode = u8();
    switch (opcode) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x74: // TUPLE
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: // TUPLE3
        stack.push(stack.splice(stack.length - (opcode - 0x84)));
        break;
      case 0x64: {
        // DICT
        const dict: PickleDict = new Map();
        setItems(dict, popMark());
        stack.push(dict);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
        stack.push(memo.get(u8()));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(memo.get(u32()));
        break;
      case 0x4a: // BININT
        stack.push(take(4).readInt32LE(0));
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(take(2).readUInt16LE(0));
        break;
      case 0x8a: {
        // LONG1: little-endian two's complement
        const digits = take(u8());
        let value = 0n;
        for (let i = digits.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(digits[i]);
        if (digits.length > 0 && digits[digits.length - 1] & 0x80) value -= 1n << BigInt(8 * digits.length);
        stack.push(Number(value));
        break;
      }
      case 0x47: // BINFLOAT
        stack.push(take(8).readDoubleBE(0));
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x54: // BINSTRING (Python 2 str)
        stack.push(take(take(4).readInt32LE(0)));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(take(u8()));
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()));
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(take(u64()));
        break;
      case 0x58: // BINUNICODE
        stack.push(take(u32()).toString('utf8'));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(take(u8()).toString('utf8'));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(take(u64()).toString('utf8'));
        break;
      case 0x63: {
        // GLOBAL
        const module = line();
        stack.push(new PickleGlobal(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        stack.push(new PickleGlobal(String(pop()), String(name)));
        break;
      }
      case 0x52: // REDUCE
      case 0x81: {
        // NEWOBJ
        const args = pop();
        stack.push(call(pop(), args));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const target = top();
        if (!(target instanceof PickleCall)) throw new Error('pickle BUILD on an unsupported object');
        target.state = state;
        break;
      }
      case 0x73: {
        // SETITEM
        const value = pop();
        const key = pop();
        setItems(top(), [key, value]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x61: {
        // APPEND
        const item = pop();
        append(top(), [item]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        append(top(), items);
        break;
      }
      default:
        throw new Error(`unsupported pickle opcode 0x${opcode.toString(16)} at byte ${pos - 1}`);
    }
  }
}

export interface NumpyArray {
  dtype: string;
  shape: number[];
  /** Raw C-order bytes of the array. */
  data: Uint8Array;
}

/**
 * Interprets an unpickled numpy.ndarray: `_reconstruct` + BUILD state (protocols 2-4) or
 * `_frombuffer(data, dtype, shape, order)` (protocol 5).
 */
export function asNumpyArray(value: unknown): NumpyArray {
  if (!(value instanceof PickleCall)) throw new Error('pickled value is not a numpy array');
  let parts: { shape: unknown; dtype: unknown; fortranOrder: unknown; data: unknown };
  if (value.callable.name === '_reconstruct' && Array.isArray(value.state)) {
    const [, shape, dtype, fortranOrder, data] = value.state as unknown[];
    parts = { shape, dtype, fortranOrder, data };
  } else if (value.callable.name === '_frombuffer') {
    const [data, dtype, shape, order] = value.args;
    parts = { shape, dtype, fortranOrder: order === 'F', data };
  } else {
    throw new Error(`pickled value is not a numpy array (${value.callable.qualifiedName})`);
  }
  const { shape, dtype, fortranOrder, data } = parts;
  if (!(dtype instanceof PickleCall) || !(data instanceof Uint8Array) || !Array.isArray(shape)) {
    throw new Error('unsupported numpy array pickle (object dtype?)');
  }
  if (fortranOrder) throw new Error('Fortran-ordered numpy arrays are not supported');
  return { dtype: pickleText(dtype.args[0]), shape: shape as number[], data };
}
