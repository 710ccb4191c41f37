// Loads the compiled libtorch addon. Everything else in src/tensor talks to
// libtorch only through `native`, and wraps its opaque handles in `Tensor`.
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { packageRoot } from '../util/package-root.js';

/** An opaque libtorch object owned by the addon (a tensor or a generator). */
export type Handle = { readonly __nativeHandle: unique symbol };

/**
 * The addon's functions. Their argument and shape checks happen in C++, and
 * every failure arrives as a JS Error naming the op and its arguments; the
 * typed surface is `Tensor`, so this table stays loosely typed.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NativeAddon = { readonly [K in NativeFunctionName]: (...args: any[]) => any };

/** Every function the addon exports (checked against the built addon in test/native-binding.test.ts). */
export type NativeFunctionName =
  | 'abs'
  | 'adamStep'
  | 'adaptiveAvgPool2d'
  | 'affineGrid'
  | 'accountExternal'
  | 'add'
  | 'add_'
  | 'addcdiv_'
  | 'addcmul_'
  | 'allFinite'
  | 'amax'
  | 'amin'
  | 'arange'
  | 'argmax'
  | 'avgPool2d'
  | 'backward'
  | 'batchNorm'
  | 'blasThreads'
  | 'bmm'
  | 'buildConfig'
  | 'cat'
  | 'ceil'
  | 'chunk'
  | 'clamp'
  | 'clamp_'
  | 'clone'
  | 'contiguous'
  | 'contiguousChannelsLast'
  | 'conv2d'
  | 'convTranspose2d'
  | 'copy_'
  | 'cos'
  | 'cpuCacheStats'
  | 'cudaAvailable'
  | 'cudaBuild'
  | 'cudaDeviceCount'
  | 'cudaDevices'
  | 'cudaMathOptions'
  | 'cudaMemoryStats'
  | 'cudaResetPeakMemory'
  | 'cudaRuntimeHeaders'
  | 'cudaSynchronize'
  | 'cudaUnavailableReason'
  | 'cumsum'
  | 'describe'
  | 'detach'
  | 'device'
  | 'dispose'
  | 'distAllreduceSum'
  | 'distAvailable'
  | 'distBackends'
  | 'distAverageGradients'
  | 'distBarrier'
  | 'distBroadcast'
  | 'distInit'
  | 'div'
  | 'dropout'
  | 'dtype'
  | 'einsum'
  | 'emaUpdate'
  | 'empty'
  | 'eq'
  | 'exp'
  | 'externalMemory'
  | 'expand'
  | 'fill_'
  | 'flatten'
  | 'flip'
  | 'floor'
  | 'fmod'
  | 'fromBuffer'
  | 'full'
  | 'fusedAttentionAvailable'
  | 'fullLike'
  | 'gather'
  | 'ge'
  | 'gelu'
  | 'generatorCreate'
  | 'generatorGetState'
  | 'generatorSetState'
  | 'getNumThreads'
  | 'grad'
  | 'gridSample'
  | 'gradNanToNum'
  | 'groupNorm'
  | 'gt'
  | 'indexSelect'
  | 'interpolate'
  | 'isContiguous'
  | 'isDisposed'
  | 'isGradEnabled'
  | 'isLeaf'
  | 'isfinite'
  | 'isnan'
  | 'item'
  | 'layerNorm'
  | 'le'
  | 'leakyRelu'
  | 'lerp_'
  | 'linalgEigh'
  | 'linear'
  | 'linspace'
  | 'liveTensors'
  | 'log'
  | 'logSoftmax'
  | 'logicalAnd'
  | 'logicalNot'
  | 'logsumexp'
  | 'lt'
  | 'maskedFill'
  | 'matmul'
  | 'maxPool2d'
  | 'maximum'
  | 'mean'
  | 'minimum'
  | 'mm'
  | 'mul'
  | 'mul_'
  | 'nanToNum'
  | 'nanToNum_'
  | 'narrow'
  | 'ne'
  | 'neg'
  | 'norm'
  | 'ones'
  | 'onesLike'
  | 'outer'
  | 'pad'
  | 'parallelInfo'
  | 'permute'
  | 'pow'
  | 'profilerStart'
  | 'profilerStop'
  | 'prod'
  | 'rand'
  | 'randint'
  | 'randn'
  | 'randperm'
  | 'reciprocal'
  | 'relu'
  | 'repeat'
  | 'requiresGrad'
  | 'reshape'
  | 'retainGrad'
  | 'round'
  | 'rsqrt'
  | 'rsub'
  | 'scalarTensor'
  | 'scaledDotProductAttention'
  | 'select'
  | 'setDeterministic'
  | 'setGradEnabled'
  | 'setNumThreads'
  | 'setRequiresGrad'
  | 'setData'
  | 'shape'
  | 'sigmoid'
  | 'sign'
  | 'silu'
  | 'sin'
  | 'slice'
  | 'softmax'
  | 'sort'
  | 'split'
  | 'sqrt'
  | 'square'
  | 'squeeze'
  | 'stack'
  | 'std'
  | 'sub'
  | 'sum'
  | 'tanh'
  | 'to'
  | 'toBuffer'
  | 'torchLibrary'
  | 'torchVersion'
  | 'transpose'
  | 'tril'
  | 'trunc'
  | 'unsqueeze'
  | 'variance'
  | 'view'
  | 'where'
  | 'zeroGrad'
  | 'zero_'
  | 'zeros'
  | 'zerosLike'
  | 'cpuResetPeakMemory'
  | 'cudaMathState'
  | 'dropoutMask';

/**
 * The libtorch engine cannot be used: the addon is not built (an install
 * without libtorch, or with --ignore-scripts), or it no longer loads (its
 * libtorch moved or changed). The message says what to run.
 */
export class EngineNotReadyError extends Error {
  readonly code = 'PD_ENGINE_NOT_READY';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EngineNotReadyError';
  }
}

/** Where the addon is loaded from: PD_ADDON, else the package's build/Release. */
export function addonPath(): string {
  // PD_ADDON: another build of the addon (e.g. one compiled against a CUDA
  // libtorch beside the default one, as scripts/cuda-build.sh makes).
  return process.env.PD_ADDON || join(packageRoot(), 'build', 'Release', 'torch_addon.node');
}

const SET_UP = 'Run `npx patch-diffusion setup` (it fetches PyTorch\'s libtorch into the per-user cache and builds or links the addon); in a clone of the repository, `bash scripts/setup.sh`.';

/** What build/engine.json says the addon was built against, for a message. */
function builtAgainst(file: string): string {
  try {
    const engine = JSON.parse(readFileSync(join(dirname(file), '..', 'engine.json'), 'utf8')) as { libtorch?: { libdir?: string; version?: string } };
    return engine.libtorch?.libdir ? ` It was built against libtorch ${engine.libtorch.version ?? ''} in ${engine.libtorch.libdir}.` : '';
  } catch {
    return '';
  }
}

function load(): NativeAddon {
  const file = addonPath();
  if (!existsSync(file)) {
    throw new EngineNotReadyError(`patch-diffusion: the libtorch engine is not set up (no addon at ${file}). ${SET_UP}`);
  }
  const require = createRequire(import.meta.url);
  try {
    return require(file) as NativeAddon;
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new EngineNotReadyError(`patch-diffusion: the addon at ${file} does not load: ${why}.${builtAgainst(file)} ${SET_UP}`, { cause: err });
  }
}

let loaded: NativeAddon | null = null;

/** The addon, loaded on first use (importing the library does not need it: `--help`, `info` and `setup` work without it). */
export function loadAddon(): NativeAddon {
  if (!loaded) {
    loaded = load();
    native = loaded;
  }
  return loaded;
}

/** Whether the addon is loaded or loads now; never throws. */
export function addonReady(): { ready: true } | { ready: false; error: Error } {
  try {
    loadAddon();
    return { ready: true };
  } catch (err) {
    return { ready: false, error: err instanceof Error ? err : new Error(String(err)) };
  }
}

/**
 * The addon's function table. Until the first call it is a stand-in that loads
 * the addon and then rebinds this export to the addon itself (ES module
 * bindings are live), so later calls go straight to it.
 */
export let native: NativeAddon = new Proxy({} as NativeAddon, {
  get: (_target, name) => (loadAddon() as unknown as Record<string | symbol, unknown>)[name],
  has: (_target, name) => name in loadAddon(),
  ownKeys: () => Reflect.ownKeys(loadAddon()),
  getOwnPropertyDescriptor: (_target, name) => {
    const d = Reflect.getOwnPropertyDescriptor(loadAddon(), name);
    return d ? { ...d, configurable: true } : undefined;
  },
});
