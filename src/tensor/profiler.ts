// Per-op timing of libtorch work (native/profiler.cc), and its grouping into
// the families a training step is made of: convolutions forward and backward,
// attention, the linear layers, normalisation, elementwise work, the
// optimizer and EMA. The rest of a step's wall time (JS, data, the binding)
// is what the op totals do not cover.
import { native } from './native.js';
import type { OpTiming } from './engine-types.js';
export type { OpTiming } from './engine-types.js';


/** Starts timing every op on this thread (clears earlier totals). */
export function startOpProfiler(): void {
  native.profilerStart();
}
/** Stops timing; the totals per op since startOpProfiler. */
export function stopOpProfiler(): OpTiming[] {
  return native.profilerStop();
}
/** Times `fn`'s ops. */
export function profileOps<T>(fn: () => T): { result: T; ops: OpTiming[] } {
  startOpProfiler();
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stopOpProfiler();
    throw e;
  }
  return { result, ops: stopOpProfiler() };
}

/**
 * The parts of a training step that opFamily sorts ops into: convolutions forward and backward, attention (bmm,
 * softmax, fused attention), the linear layers (matmuls), normalisation, other elementwise ATen work, the
 * optimizer's update ('pd::' ops), the EMA update ('pd::emaUpdate'), and 'other'.
 */
export type OpFamily =
  | 'conv forward'
  | 'conv backward'
  | 'attention'
  | 'linear'
  | 'norm'
  | 'elementwise'
  | 'optimizer'
  | 'ema'
  | 'other';

// Forward ops are ATen names ("aten::mkldnn_convolution"); the backward pass
// adds autograd nodes ("ConvolutionBackward0") and the ATen ops they call.
const CONV = /conv/i;
const ATTENTION = /bmm|softmax|scaled_dot_product/i;
const LINEAR = /addmm|(^|::)mm\b|^MmBackward|linear|matmul/i;
const NORM = /(group|layer|batch)_?norm/i;

/** The family an op belongs to, by its name (see OpTiming.name). */
export function opFamily(name: string): OpFamily {
  if (name.startsWith('pd::emaUpdate')) return 'ema';
  if (name.startsWith('pd::')) return 'optimizer';
  const backward = name.startsWith('bwd ');
  const op = backward ? name.slice(4) : name;
  if (CONV.test(op)) return backward || /backward/i.test(op) ? 'conv backward' : 'conv forward';
  if (ATTENTION.test(op)) return 'attention';
  if (LINEAR.test(op)) return 'linear';
  if (NORM.test(op)) return 'norm';
  if (op.startsWith('aten::') || op.startsWith('autograd::') || /Backward\d*$/.test(op)) return 'elementwise';
  return 'other';
}

/** Self time per family, largest first. */
export function opFamilies(ops: readonly OpTiming[]): { family: OpFamily; ms: number; calls: number }[] {
  const by = new Map<OpFamily, { ms: number; calls: number }>();
  for (const o of ops) {
    const f = opFamily(o.name);
    const e = by.get(f) ?? { ms: 0, calls: 0 };
    e.ms += o.selfMs;
    e.calls += o.calls;
    by.set(f, e);
  }
  return [...by].map(([family, e]) => ({ family, ...e })).sort((a, b) => b.ms - a.ms);
}
