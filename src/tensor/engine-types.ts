// The plain data types the addon's functions take and return (dtypes,
// devices, typed arrays, the engine's statistics). They depend on nothing, so
// the addon's interface and the modules built on it can all share them; each
// module re-exports the ones it is about.

/**
 * Element types, named as torch's dtypes (torch.float32 is 'float32'). Tensor.data() reads float16 and bfloat16
 * values back as float32; bool is stored one byte per element.
 */
export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'uint8' | 'bool';

/**
 * Where a tensor's storage lives, as torch.device: 'cpu', or a CUDA GPU: 'cuda:N' the N-th visible one, 'cuda'
 * the current one (cuda:0 here). Tensor.device reports 'cpu' or 'cuda:N'.
 */
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

/**
 * The typed arrays that carry a tensor's values across the binding. Tensor.data() returns a Float32Array for float32
 * (and, converted, float16 and bfloat16), Float64Array for float64, BigInt64Array for int64, Int32Array for int32
 * and Uint8Array for uint8 and bool; tensor() reads these, and a Uint16Array as raw float16/bfloat16 bits.
 */
export type TypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Uint16Array;

/** A visible GPU (name null and figures 0 when the addon was built without the CUDA runtime's headers). */
export interface CudaDevice {
  /** N in 'cuda:N'. */
  index: number;
  /** The device's name, e.g. "NVIDIA H100 80GB HBM3". */
  name: string | null;
  /** Bytes of device memory. */
  totalMemory: number;
  /** e.g. "9.0" */
  computeCapability: string | null;
  /** Number of streaming multiprocessors (SMs). */
  multiprocessors: number;
}

/** The CUDA caching allocator's bytes on a GPU, now and at the peak (null on the CPU, or where the build cannot tell). */
export interface CudaMemoryStats {
  /** Bytes held by live tensors now. */
  allocated: number;
  /** The most bytes held by live tensors since the start or resetCudaPeakMemory. */
  peakAllocated: number;
  /** Bytes the allocator has reserved from the driver (allocated plus its cache) now. */
  reserved: number;
  /** The most bytes reserved since the start or resetCudaPeakMemory. */
  peakReserved: number;
}

/**
 * The caching allocator for CPU tensor storage (native/cpu_allocator.cc):
 * blocks of 64 KiB and more are kept for reuse after they are freed, up to
 * `capBytes` idle (PD_CPU_CACHE_MB, default 2048; 0 turns it off).
 */
export interface CpuCacheStats {
  enabled: boolean;
  /** Requests of 64 KiB and more served from the cache. */
  hits: number;
  /** Requests of 64 KiB and more that had to allocate. */
  misses: number;
  /** Bytes of freed blocks held for reuse. */
  cachedBytes: number;
  /** The most bytes the cache holds idle (PD_CPU_CACHE_MB). */
  capBytes: number;
  /**
   * Bytes of CPU tensor storage in use (as requested), now and at the peak
   * since the start or the last resetCpuPeakMemory: the CPU's counterpart of
   * cudaMemoryStats' allocated figures (0 when the cache is off).
   */
  allocatedBytes: number;
  peakAllocatedBytes: number;
}

/** One op's totals over a profiled span (stopOpProfiler, profileOps), in milliseconds of wall time on this thread. */
export interface OpTiming {
  /** libtorch's op name ("aten::mkldnn_convolution"); "bwd " in front when run by the backward pass; "pd::…" for the addon's fused updates. */
  name: string;
  /** How many times it ran. */
  calls: number;
  /** Time inside the op, nested ops included. */
  totalMs: number;
  /** Time inside the op, nested ops excluded: these add up to the op work of the profiled span. */
  selfMs: number;
}

/**
 * interpolate's resampling filter: torch's mode 'nearest' (the legacy index rule, not 'nearest-exact'),
 * 'bilinear' or 'bicubic'; the '-antialias' forms are antialias=True, which widens the filter when shrinking
 * (as PIL resizes).
 */
export type InterpolateMode = 'nearest' | 'bilinear' | 'bicubic' | 'bilinear-antialias' | 'bicubic-antialias';

export type CollectiveBackend = 'gloo' | 'nccl';

/** The process-wide cuDNN/cuBLAS settings that applyCudaMathOptions and setTf32 change (libtorch's context; kept in a CPU build too, where they do nothing). */
export interface CudaMathState {
  /** cuDNN's autotuner (torch.backends.cudnn.benchmark). */
  benchmark: boolean;
  /** TF32 in float32 cuDNN convolutions (torch.backends.cudnn.allow_tf32). */
  tf32Cudnn: boolean;
  /** TF32 in float32 cuBLAS matrix products (torch.backends.cuda.matmul.allow_tf32). */
  tf32Cublas: boolean;
  /** cuDNN picks deterministic algorithms only (torch.backends.cudnn.deterministic). */
  deterministic: boolean;
}
