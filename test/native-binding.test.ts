// The typed interface of the addon (`NativeAddon` in src/tensor/native-addon.ts)
// and the built addon must list the same functions, so neither can drift.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAddon, native, type NativeAddon } from '../src/tensor/native.js';

function packageRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) {
    const parent = dirname(d);
    assert.notEqual(parent, d, 'package root not found');
    d = parent;
  }
  return d;
}

const root = packageRoot();

/**
 * Every function of `NativeAddon`, once. `satisfies` makes the compiler check
 * this list against the interface both ways (a missing key and an extra key
 * are both errors), so comparing it with the built addon's exports compares
 * the interface itself.
 */
const declaredKeys = {
  abs: true, accountExternal: true, adamStep: true, adaptiveAvgPool2d: true, add: true, add_: true, addcdiv_: true,
  addcmul_: true, affineGrid: true, allFinite: true, amax: true, amin: true, arange: true, argmax: true,
  avgPool2d: true, backward: true, batchNorm: true, blasThreads: true, bmm: true, buildConfig: true, cat: true,
  ceil: true, chunk: true, clamp: true, clamp_: true, clone: true, contiguous: true, contiguousChannelsLast: true,
  conv2d: true, convTranspose2d: true, copy_: true, cos: true, cpuCacheStats: true, cpuResetPeakMemory: true, cudaAvailable: true,
  cudaBuild: true, cudaDeviceCount: true, cudaDevices: true, cudaMathOptions: true, cudaMathState: true, cudaMemoryStats: true,
  cudaResetPeakMemory: true, cudaRuntimeHeaders: true, cudaSynchronize: true, cudaUnavailableReason: true,
  cumsum: true, describe: true, detach: true, device: true, dispose: true, distAllreduceSum: true,
  distAvailable: true, distAverageGradients: true, distAwaitGradients: true, distBackwardOverlapped: true, distBackends: true, distBarrier: true, distBroadcast: true,
  distInit: true, div: true, dropout: true, dropoutMask: true, dtype: true, einsum: true, emaUpdate: true, empty: true, eq: true,
  exp: true, expand: true, externalMemory: true, fill_: true, flatten: true, flip: true, floor: true, fmod: true,
  fromBuffer: true, full: true, fullLike: true, fusedAttentionAvailable: true, gather: true, ge: true, gelu: true,
  generatorCreate: true, generatorGetState: true, generatorSetState: true, getNumThreads: true, grad: true,
  gradNanToNum: true, gridSample: true, groupNorm: true, gt: true, indexSelect: true, interpolate: true,
  isContiguous: true, isDisposed: true, isfinite: true, isGradEnabled: true, isLeaf: true, isnan: true, item: true,
  layerNorm: true, le: true, leakyRelu: true, lerp_: true, linalgEigh: true, linear: true, linspace: true,
  liveTensors: true, log: true, logicalAnd: true, logicalNot: true, logSoftmax: true, logsumexp: true, lt: true,
  maskedFill: true, matmul: true, maximum: true, maxPool2d: true, mean: true, minimum: true, mm: true, mul: true,
  mul_: true, nanToNum: true, nanToNum_: true, narrow: true, ne: true, neg: true, norm: true, ones: true,
  onesLike: true, outer: true, pad: true, parallelInfo: true, permute: true, pow: true, prod: true,
  profilerStart: true, profilerStop: true, rand: true, randint: true, randn: true, randperm: true, reciprocal: true,
  relu: true, repeat: true, requiresGrad: true, reshape: true, retainGrad: true, round: true, rsqrt: true,
  rsub: true, scalarTensor: true, scaledDotProductAttention: true, select: true, setData: true,
  setDeterministic: true, setGradEnabled: true, setNumThreads: true, setRequiresGrad: true, shape: true,
  sigmoid: true, sign: true, silu: true, sin: true, slice: true, softmax: true, sort: true, split: true, sqrt: true,
  square: true, squeeze: true, stack: true, std: true, sub: true, sum: true, tanh: true, to: true, toBuffer: true,
  torchLibrary: true, torchVersion: true, transpose: true, tril: true, trunc: true, unsqueeze: true, variance: true,
  view: true, where: true, zero_: true, zeroGrad: true, zeros: true, zerosLike: true,
} satisfies Record<keyof NativeAddon, true>;

function declaredNames(): string[] {
  return Object.keys(declaredKeys);
}

/** The names the built addon exports, as the loader hands it out. */
function builtNames(): string[] {
  const addon = loadAddon();
  for (const [k, v] of Object.entries(addon)) assert.equal(typeof v, 'function', `addon export ${k} is not a function`);
  return Object.keys(addon);
}

/** The names registered with PD_FN in native/*.cc (a third view, from the C++ source). */
function registeredNames(): string[] {
  const dirPath = join(root, 'native');
  const names: string[] = [];
  for (const f of readdirSync(dirPath).filter((x) => x.endsWith('.cc'))) {
    const src = readFileSync(join(dirPath, f), 'utf8');
    // PD_FN(name, …) and the PD_BINARY / PD_UNARY shorthands that expand to it.
    // Lines continued with a backslash belong to the macros' own definitions.
    for (const m of src.matchAll(/^\s*PD_(?:FN|BINARY|UNARY)\((\w+)\s*,.*$/gm)) if (!m[0].trimEnd().endsWith('\\')) names.push(m[1]!);
  }
  return names;
}

const diff = (a: string[], b: string[]) => a.filter((x) => !b.includes(x)).sort();

describe('native binding table', () => {
  it('every declared name exists in the built addon, and every exported function is declared', () => {
    const declared = declaredNames();
    const built = builtNames();
    assert.deepEqual(diff(declared, built), [], 'declared in NativeAddon but missing from the addon (rebuild it?)');
    assert.deepEqual(diff(built, declared), [], 'exported by the addon but missing from NativeAddon');
  });

  it('the C++ sources register the same names (the addon is not stale)', () => {
    const registered = registeredNames();
    assert.deepEqual(registered.filter((n, i) => registered.indexOf(n) !== i), [], 'a name is registered twice');
    const built = builtNames();
    assert.deepEqual(diff(registered, built), [], 'registered in native/*.cc but not in the built addon: rebuild it');
    assert.deepEqual(diff(built, registered), [], 'in the built addon but no longer in native/*.cc: rebuild it');
  });

  it('the loaded `native` object is the addon', () => {
    for (const name of declaredNames()) assert.equal(typeof Reflect.get(native, name), 'function', name);
  });
});
