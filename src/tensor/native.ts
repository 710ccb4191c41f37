// Loads the compiled libtorch addon. Everything else in src/tensor talks to
// libtorch only through `native`, and wraps its opaque handles in `Tensor`.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

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
  | 'zerosLike';

function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('patch-diffusion: cannot find the package root');
    dir = parent;
  }
  return dir;
}

function load(): NativeAddon {
  // PD_ADDON: another build of the addon (e.g. one compiled against a CUDA
  // libtorch beside the default one, as scripts/cuda-build.sh makes).
  const file = process.env.PD_ADDON || join(findPackageRoot(), 'build', 'Release', 'torch_addon.node');
  if (!existsSync(file)) {
    throw new Error(
      `patch-diffusion: the libtorch addon is not built (${file} is missing).\n` +
        'Build it with `npm run build:native` after installing libtorch ' +
        '(Debian: sudo apt-get install libtorch-dev libopenblas0-pthread; or pip install torch; ' +
        'or set LIBTORCH to an unpacked libtorch).',
    );
  }
  const require = createRequire(import.meta.url);
  return require(file) as NativeAddon;
}

export const native: NativeAddon = load();
