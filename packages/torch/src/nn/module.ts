// nn.Module: parameters, buffers and children found by field, as PyTorch registers attributes.
import { noGrad } from '../autograd.js';
import { asDevice, isDType, isFloatingDType, isMemoryFormat, type DType, type DeviceLike, type MemoryFormat } from '../dtype.js';
import { keep, tidy } from '../scope.js';
import { Tensor } from '../tensor.js';

/** A tensor that a Module trains. Wrapping shares the storage and sets requiresGrad. */
export class Parameter extends Tensor {
  constructor(data: Tensor, requiresGrad = true) {
    // The detached reference shares this parameter's handle, so it is kept out of every scope.
    const detached = keep(noGrad(() => data.detach()));
    super(detached.handle);
    this.requiresGrad_(requiresGrad);
    keep(this);
  }
}

export type StateDict = Map<string, Tensor>;

export abstract class Module<In extends unknown[] = [Tensor], Out = Tensor> {
  training = true;
  readonly #buffers = new Map<string, Tensor>();
  readonly #nonPersistent = new Set<string>();

  abstract forward(...inputs: In): Out;

  /** Registers a buffer (state that is saved but not trained), under its state-dict name. */
  registerBuffer(name: string, value: Tensor, persistent = true): Tensor {
    this.#buffers.set(name, keep(value));
    if (!persistent) this.#nonPersistent.add(name);
    return value;
  }

  buffer(name: string): Tensor {
    const b = this.#buffers.get(name);
    if (!b) throw new Error(`${this.constructor.name}: no buffer named '${name}'`);
    return b;
  }

  *namedChildren(): Generator<[string, Module<any, any>]> {
    for (const [name, value] of Object.entries(this)) {
      if (value instanceof Module) yield [name, value];
    }
  }

  *namedModules(prefix = ''): Generator<[string, Module<any, any>]> {
    yield [prefix, this];
    for (const [name, child] of this.namedChildren()) yield* child.namedModules(prefix ? `${prefix}.${name}` : name);
  }

  *namedParameters(prefix = ''): Generator<[string, Parameter]> {
    const seen = new Set<Parameter>();
    for (const [modName, mod] of this.namedModules(prefix)) {
      for (const [name, value] of Object.entries(mod)) {
        if (value instanceof Parameter && !seen.has(value)) {
          seen.add(value);
          yield [modName ? `${modName}.${name}` : name, value];
        }
      }
    }
  }

  parameters(): Parameter[] {
    return Array.from(this.namedParameters(), ([, p]) => p);
  }

  *namedBuffers(prefix = ''): Generator<[string, Tensor, boolean]> {
    for (const [modName, mod] of this.namedModules(prefix)) {
      for (const [name, b] of mod.#buffers) yield [modName ? `${modName}.${name}` : name, b, !mod.#nonPersistent.has(name)];
    }
  }

  modules(): Module<any, any>[] {
    return Array.from(this.namedModules(), ([, m]) => m);
  }

  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Drops every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = undefined;
  }

  /** Parameters and persistent buffers by their dotted names, as PyTorch's state_dict. */
  stateDict(): StateDict {
    const out: StateDict = new Map();
    for (const [name, p] of this.namedParameters()) out.set(name, p);
    for (const [name, b, persistent] of this.namedBuffers()) if (persistent) out.set(name, b);
    return out;
  }

  /**
   * Copies values in. With strict (the default) every key must match and shapes must agree;
   * the error lists what is missing, unexpected and mis-shaped.
   */
  loadStateDict(state: StateDict | Record<string, Tensor>, strict = true): { missing: string[]; unexpected: string[] } {
    const incoming = state instanceof Map ? state : new Map(Object.entries(state));
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !incoming.has(k));
    const unexpected = [...incoming.keys()].filter((k) => !own.has(k));
    const misShaped: string[] = [];
    for (const [k, target] of own) {
      const src = incoming.get(k);
      if (src && src.shape.join(',') !== target.shape.join(',')) misShaped.push(`${k} (expected [${target.shape}], got [${src.shape}])`);
    }
    if (misShaped.length || (strict && (missing.length || unexpected.length))) {
      const parts = [
        missing.length ? `missing keys: ${missing.join(', ')}` : '',
        unexpected.length ? `unexpected keys: ${unexpected.join(', ')}` : '',
        misShaped.length ? `shape mismatch: ${misShaped.join(', ')}` : '',
      ].filter(Boolean);
      throw new Error(`loadStateDict for ${this.constructor.name}: ${parts.join('; ')}`);
    }
    noGrad(() =>
      tidy(() => {
        for (const [k, target] of own) {
          const src = incoming.get(k);
          if (src) target.copy_(src);
        }
      }),
    );
    return { missing, unexpected };
  }

  /**
   * Moves or converts every parameter and buffer in place: a dtype converts the floating ones,
   * a device moves all, a memory format relays out the 4-d ones (as PyTorch's memory_format).
   */
  to(target: DType | DeviceLike | MemoryFormat): this {
    const convert = this.#converter(target);
    noGrad(() => {
      for (const p of this.parameters()) convert(p);
      for (const [, b] of this.namedBuffers()) convert(b);
    });
    return this;
  }

  #converter(target: DType | DeviceLike | MemoryFormat): (t: Tensor) => void {
    const replace = (t: Tensor, moved: Tensor) => {
      t.setData(moved);
      moved.dispose();
    };
    if (isMemoryFormat(target)) {
      return (t) => {
        if (t.dim() === 4) replace(t, target === 'channelsLast' ? t.channelsLast() : t.contiguous());
      };
    }
    if (isDType(target)) {
      return (t) => {
        if (isFloatingDType(t.dtype)) replace(t, t.toDtype(target));
      };
    }
    const device = asDevice(target);
    if (device) return (t) => replace(t, t.toDevice(device));
    throw new TypeError(
      `${this.constructor.name}.to: expected a dtype, a device ('cpu', 'cuda', 'cuda:N') or a memory format ('contiguous', 'channelsLast'), got ${JSON.stringify(target)}`,
    );
  }

  /** Number of trainable scalars. */
  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.numel(), 0);
  }
}
