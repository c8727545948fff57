// Deterministic freeing of tensors: everything created inside tidy() is disposed when it returns,
// except what it returns and what keep() marked. GC finalizers are only the safety net.
import { native } from './handle.js';
import type { Tensor } from './tensor.js';

const scopes: Set<Tensor>[] = [];
const kept = new WeakSet<Tensor>();

/**
 * Called for every new Tensor wrapper. A tensor outside any scope is left to dispose() or GC,
 * so V8 is told about its memory: the native side did that already when it made the handle (it
 * knows whether a scope is open, see openScope). A scope frees its own tensors and V8 need not know.
 */
export function track(t: Tensor): void {
  scopes[scopes.length - 1]?.add(t);
}

/** Exempts a tensor from every enclosing and future scope (for parameters, buffers, optimizer state). */
export function keep<T extends Tensor>(t: T): T {
  kept.add(t);
  let scoped = false;
  for (const scope of scopes) if (scope.delete(t)) scoped = true;
  // A tensor that was in no scope had its memory reported already.
  if (scoped) t.reportMemory();
  return t;
}

function openScope(): Set<Tensor> {
  const scope = new Set<Tensor>();
  if (scopes.push(scope) === 1) native.setScoped(true);
  return scope;
}

function closeScope(): void {
  scopes.pop();
  if (scopes.length === 0) native.setScoped(false);
}

function collectTensors(value: unknown, out: Set<Tensor>, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (isTensor(value)) {
    out.add(value);
    return;
  }
  if (value instanceof Map) {
    for (const v of value.values()) collectTensors(v, out, seen);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collectTensors(v, out, seen);
    return;
  }
  if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectTensors(v, out, seen);
  }
}

let isTensor: (v: unknown) => v is Tensor = (_v): _v is Tensor => false;
export function registerTensorCheck(check: (v: unknown) => v is Tensor): void {
  isTensor = check;
}

/**
 * Runs `fn` in a new scope. Tensors created inside are disposed when it returns, except the
 * tensors found in its result (also inside arrays, plain objects and Maps), which move to the
 * enclosing scope. `fn` must be synchronous.
 */
export function tidy<T>(fn: () => T): T {
  const scope = openScope();
  let result: T;
  try {
    result = fn();
  } catch (e) {
    closeScope();
    for (const t of scope) if (!kept.has(t)) t.dispose();
    throw e;
  }
  closeScope();
  if (result instanceof Promise) {
    for (const t of scope) if (!kept.has(t)) t.dispose();
    throw new Error('tidy: the function must be synchronous; run the async part outside and tidy each step');
  }
  const returned = new Set<Tensor>();
  collectTensors(result, returned);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (kept.has(t)) continue;
    if (!returned.has(t)) t.dispose();
    else if (parent) parent.add(t);
    else t.reportMemory();
  }
  return result;
}

/** How many scopes are open (for tests and diagnostics). */
export function scopeDepth(): number {
  return scopes.length;
}
