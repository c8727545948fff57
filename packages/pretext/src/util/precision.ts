// Arithmetic precision of training passes: float32, or CPU autocast to bfloat16, and 'auto', which
// takes bfloat16 where the CPU computes it natively (measured faster there at no loss of margin).
import { autocast, cpu } from '@pretext/torch';

export const PRECISIONS = ['auto', 'fp32', 'bf16'] as const;
export type PrecisionSetting = (typeof PRECISIONS)[number];
export type Precision = Exclude<PrecisionSetting, 'auto'>;

/** 'auto' as this machine decides it: 'bf16' where the CPU has native bfloat16 (AVX512-BF16, AMX), else 'fp32'. */
export function resolvePrecision(setting: PrecisionSetting, nativeBf16: () => boolean = cpu.isBf16Supported): Precision {
  return setting === 'auto' ? (nativeBf16() ? 'bf16' : 'fp32') : setting;
}

/** Runs a forward pass (and its loss) at `precision`. */
export function withPrecision<T>(precision: Precision, forward: () => T): T {
  return precision === 'bf16' ? autocast('cpu', 'bfloat16', forward) : forward();
}
