// The addon's exports as TypeScript sees them: one signature per function that
// native/*.cc registers with PD_FN, read from the argument readers each one
// uses (T = a tensor handle, OT = one or null, TL = a list, IL = a list of
// integers, D/I = numbers, B = a boolean). The C++ side still checks every
// argument at run time (the types cannot stop a caller that casts), so a
// mistake here shows up as a TypeError naming the op, not as a crash.
// test/native-binding.test.ts fails when this list and the built addon differ.
import type { CollectiveBackend, CpuCacheStats, CudaDevice, CudaMathState, CudaMemoryStats, Device, DType, InterpolateMode, OpTiming, TypedArray } from './engine-types.js';

declare const tensorHandle: unique symbol;
declare const generatorHandle: unique symbol;

/**
 * A libtorch tensor owned by the addon (a Napi::External around a TensorBox).
 * Opaque on purpose: only the addon reads it, and only `Tensor` holds one.
 */
export type TensorHandle = { readonly [tensorHandle]: true };
/** A libtorch CPU generator owned by the addon; only `Generator` holds one. */
export type GeneratorHandle = { readonly [generatorHandle]: true };

type T = TensorHandle;
/** A tensor, or null where the op takes an optional one (a missing bias). */
type OT = TensorHandle | null;
type TL = readonly TensorHandle[];
type IL = readonly number[];
/** The second operand of a broadcasting op: a tensor or a plain number. */
type Operand = TensorHandle | number;
/** Where a new tensor is made; absent or null means the CPU. */
type At = Device | null | undefined;

export interface NativeAddon {
  // ---- life cycle and metadata (tensor.cc) ----
  dispose(t: T): void;
  accountExternal(t: T): void;
  isDisposed(t: T): boolean;
  liveTensors(): number;
  cpuCacheStats(): CpuCacheStats;
  /** Starts the CPU allocator's peak of bytes in use again from the bytes in use now. */
  cpuResetPeakMemory(): void;
  externalMemory(): number;
  shape(t: T): number[];
  dtype(t: T): DType;
  device(t: T): Device;
  requiresGrad(t: T): boolean;
  isContiguous(t: T): boolean;
  describe(t: T): string;

  // ---- creation and reading back (tensor.cc) ----
  fromBuffer(data: TypedArray, shape: IL, dtype: DType): T;
  /** A contiguous CPU copy of the tensor's bytes. */
  toBuffer(t: T): ArrayBuffer;
  item(t: T): number;
  scalarTensor(value: number, dtype: DType, device?: At): T;
  zeros(shape: IL, dtype: DType, device?: At): T;
  ones(shape: IL, dtype: DType, device?: At): T;
  empty(shape: IL, dtype: DType, device?: At): T;
  full(shape: IL, value: number, dtype: DType, device?: At): T;
  arange(start: number, end: number, step: number, dtype: DType, device?: At): T;
  linspace(start: number, end: number, steps: number, dtype: DType, device?: At): T;
  zerosLike(t: T): T;
  onesLike(t: T): T;
  fullLike(t: T, value: number): T;

  // ---- seeded random draws (tensor.cc) ----
  generatorCreate(seed: number): GeneratorHandle;
  generatorGetState(g: GeneratorHandle): T;
  generatorSetState(g: GeneratorHandle, state: T): void;
  randn(g: GeneratorHandle, shape: IL, dtype: DType, device?: At): T;
  rand(g: GeneratorHandle, shape: IL, dtype: DType, device?: At): T;
  randint(g: GeneratorHandle, low: number, high: number, shape: IL, device?: At): T;
  randperm(g: GeneratorHandle, n: number, device?: At): T;

  // ---- devices, threads and the engine (tensor.cc) ----
  /** dtype and device each stay as they are when not given. */
  to(t: T, dtype?: DType, device?: Device): T;
  cudaAvailable(): boolean;
  cudaDeviceCount(): number;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  blasThreads(): number;
  parallelInfo(): string;
  torchVersion(): string;
  buildConfig(): string;
  torchLibrary(): string | null;
  setDeterministic(on: boolean): void;

  // ---- views, shape and indexing (tensor.cc) ----
  reshape(t: T, shape: IL): T;
  view(t: T, shape: IL): T;
  permute(t: T, dims: IL): T;
  transpose(t: T, dim0: number, dim1: number): T;
  contiguous(t: T): T;
  contiguousChannelsLast(t: T): T;
  slice(t: T, dim: number, start: number | null, end: number | null, step: number): T;
  narrow(t: T, dim: number, start: number, length: number): T;
  select(t: T, dim: number, index: number): T;
  squeeze(t: T, dim: number): T;
  unsqueeze(t: T, dim: number): T;
  flatten(t: T, startDim: number, endDim: number): T;
  expand(t: T, shape: IL): T;
  repeat(t: T, times: IL): T;
  flip(t: T, dims: IL): T;
  cat(tensors: TL, dim: number): T;
  stack(tensors: TL, dim: number): T;
  split(t: T, size: number, dim: number): T[];
  chunk(t: T, chunks: number, dim: number): T[];
  indexSelect(t: T, dim: number, index: T): T;
  gather(t: T, dim: number, index: T): T;
  maskedFill(t: T, mask: T, value: number): T;
  clone(t: T): T;
  detach(t: T): T;
  tril(t: T, diagonal: number): T;
  pad(t: T, padding: IL, mode: 'constant' | 'reflect' | 'replicate', value: number): T;

  // ---- element-wise math (ops_math.cc) ----
  add(t: T, other: Operand, alpha?: number): T;
  sub(t: T, other: Operand, alpha?: number): T;
  mul(t: T, other: Operand): T;
  div(t: T, other: Operand): T;
  pow(t: T, exponent: Operand): T;
  eq(t: T, other: Operand): T;
  ne(t: T, other: Operand): T;
  lt(t: T, other: Operand): T;
  le(t: T, other: Operand): T;
  gt(t: T, other: Operand): T;
  ge(t: T, other: Operand): T;
  fmod(t: T, other: Operand): T;
  rsub(t: T, other: number): T;
  maximum(a: T, b: T): T;
  minimum(a: T, b: T): T;
  where(condition: T, a: T, b: T): T;
  logicalAnd(a: T, b: T): T;
  logicalNot(t: T): T;
  neg(t: T): T;
  abs(t: T): T;
  exp(t: T): T;
  log(t: T): T;
  sqrt(t: T): T;
  rsqrt(t: T): T;
  square(t: T): T;
  reciprocal(t: T): T;
  sin(t: T): T;
  cos(t: T): T;
  tanh(t: T): T;
  sigmoid(t: T): T;
  relu(t: T): T;
  floor(t: T): T;
  ceil(t: T): T;
  round(t: T): T;
  trunc(t: T): T;
  sign(t: T): T;
  isfinite(t: T): T;
  isnan(t: T): T;
  clamp(t: T, min: number | null, max: number | null): T;
  nanToNum(t: T, nan: number, posinf: number, neginf: number): T;

  // ---- reductions: an empty `dims` reduces over everything (ops_math.cc) ----
  sum(t: T, dims: IL, keepdim: boolean): T;
  mean(t: T, dims: IL, keepdim: boolean): T;
  prod(t: T): T;
  variance(t: T, dims: IL, unbiased: boolean, keepdim: boolean): T;
  std(t: T, dims: IL, unbiased: boolean, keepdim: boolean): T;
  amax(t: T, dims: IL, keepdim: boolean): T;
  amin(t: T, dims: IL, keepdim: boolean): T;
  argmax(t: T, dim: number, keepdim: boolean): T;
  logsumexp(t: T, dims: IL, keepdim: boolean): T;
  cumsum(t: T, dim: number): T;
  norm(t: T): T;
  /** [values, indices] */
  sort(t: T, dim: number, descending: boolean): [T, T];
  allFinite(t: T): boolean;

  // ---- linear algebra (ops_math.cc) ----
  matmul(a: T, b: T): T;
  mm(a: T, b: T): T;
  bmm(a: T, b: T): T;
  linear(x: T, weight: T, bias: OT): T;
  einsum(equation: string, operands: TL): T;
  outer(a: T, b: T): T;
  /** [eigenvalues, eigenvectors] */
  linalgEigh(t: T): [T, T];

  // ---- in-place ops on the first argument (ops_math.cc) ----
  copy_(t: T, source: T): void;
  zero_(t: T): void;
  fill_(t: T, value: number): void;
  mul_(t: T, other: Operand): void;
  add_(t: T, other: Operand, alpha?: number): void;
  lerp_(t: T, end: T, weight: Operand): void;
  clamp_(t: T, min: number | null, max: number | null): void;
  addcmul_(t: T, a: T, b: T, value: number): void;
  addcdiv_(t: T, a: T, b: T, value: number): void;
  nanToNum_(t: T, nan: number, posinf: number, neginf: number): void;

  // ---- neural-network ops (ops_nn.cc); pairs are [height, width] ----
  conv2d(x: T, weight: T, bias: OT, stride: IL, padding: IL, dilation: IL, groups: number): T;
  convTranspose2d(x: T, weight: T, bias: OT, stride: IL, padding: IL, outputPadding: IL, groups: number, dilation: IL): T;
  groupNorm(x: T, groups: number, weight: OT, bias: OT, eps: number): T;
  layerNorm(x: T, normalizedShape: IL, weight: OT, bias: OT, eps: number): T;
  batchNorm(x: T, weight: OT, bias: OT, runningMean: OT, runningVar: OT, training: boolean, momentum: number, eps: number): T;
  softmax(x: T, dim: number): T;
  logSoftmax(x: T, dim: number): T;
  fusedAttentionAvailable(): boolean;
  scaledDotProductAttention(q: T, k: T, v: T): T;
  silu(x: T): T;
  gelu(x: T): T;
  leakyRelu(x: T, slope: number): T;
  dropout(x: T, p: number, generator: GeneratorHandle): T;
  /** The keep mask dropout would draw (1 = kept), unscaled, in `dtype` (default bool). */
  dropoutMask(x: T, p: number, generator: GeneratorHandle, dtype?: DType): T;
  interpolate(x: T, size: IL, mode: InterpolateMode, alignCorners: boolean): T;
  affineGrid(theta: T, size: IL, alignCorners: boolean): T;
  gridSample(x: T, grid: T, mode: 'bilinear' | 'nearest' | 'bicubic', paddingMode: 'zeros' | 'border' | 'reflection', alignCorners: boolean): T;
  avgPool2d(x: T, kernel: IL, stride: IL, padding: IL, countIncludePad: boolean): T;
  maxPool2d(x: T, kernel: IL, stride: IL, padding: IL): T;
  adaptiveAvgPool2d(x: T, size: IL): T;

  // ---- autograd and the fused parameter updates (autograd.cc) ----
  setRequiresGrad(t: T, flag: boolean): void;
  isLeaf(t: T): boolean;
  retainGrad(t: T): void;
  /** The gradient may be null only for a one-element tensor. */
  backward(t: T, gradient: OT): void;
  /** null until backward has reached the tensor. */
  grad(t: T): T | null;
  zeroGrad(params: TL): void;
  /** Returns the previous setting. */
  setGradEnabled(on: boolean): boolean;
  isGradEnabled(): boolean;
  /** Returns how many parameters had a non-finite gradient entry. */
  gradNanToNum(params: TL, nan: number, posinf: number, neginf: number): number;
  adamStep(params: TL, expAvg: TL, expAvgSq: TL, step: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number): void;
  emaUpdate(ema: TL, net: TL, beta: number): void;
  /** Replaces t's data (storage, dtype, device) and keeps the tensor object. */
  setData(t: T, source: T): void;

  // ---- CUDA (cuda.cc); a missing index means GPU 0 ----
  cudaBuild(): boolean;
  cudaRuntimeHeaders(): boolean;
  cudaUnavailableReason(): string | null;
  cudaDevices(): CudaDevice[];
  cudaSynchronize(index?: number): void;
  cudaMemoryStats(index?: number): CudaMemoryStats | null;
  /** cuDNN's autotuner, TF32 (cuDNN; cuBLAS too unless `allowTf32Cublas` says otherwise) and deterministic cuDNN. */
  cudaMathOptions(benchmark: boolean, allowTf32: boolean, deterministic: boolean, allowTf32Cublas?: boolean): void;
  cudaMathState(): CudaMathState;
  cudaResetPeakMemory(index?: number): void;

  // ---- process groups (dist.cc) ----
  distInit(
    masterAddr: string, masterPort: number, rank: number, worldSize: number, joinTimeoutMs: number, hostStore: boolean,
    storePrefix: string, deviceHost: string, networkInterface: string, timeoutMs: number, stuckMessage: string,
    backend?: CollectiveBackend, cudaDevice?: number,
  ): void;
  distAllreduceSum(t: T): void;
  distBroadcast(tensors: TL, root: number): void;
  /** Returns the number of buckets. */
  distAverageGradients(params: TL, bucketBytes: number): number;
  /**
   * The last round's backward with each gradient bucket's all-reduce launched as soon as its gradients are final
   * (DDP's overlap); returns [buckets, launched during backward, unused parameters]. distAwaitGradients finishes it.
   */
  distBackwardOverlapped(loss: T, params: TL, bucketBytes: number, firstBucketBytes: number): [number, number, number];
  /** Waits for the overlapped all-reduce, divides by the world size and writes the means into the gradients; returns the buckets. */
  distAwaitGradients(): number;
  distBarrier(): void;
  distAvailable(): boolean;
  distBackends(): CollectiveBackend[];

  // ---- the op profiler (profiler.cc) ----
  profilerStart(): void;
  profilerStop(): OpTiming[];
}
