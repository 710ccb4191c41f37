// Process-wide libtorch settings: threads, devices, live-tensor count.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { native } from './native.js';
import type { Device } from './tensor.js';
import type { CudaDevice, CudaMathState, CudaMemoryStats, CpuCacheStats } from './engine-types.js';
export type { CudaDevice, CudaMathState, CudaMemoryStats, CpuCacheStats } from './engine-types.js';

/**
 * The most threads a caller may ask for: 4 per core. More only slows a step
 * down, and a count in the tens of thousands crashes OpenMP.
 */
export function maxThreads(): number {
  return 4 * availableParallelism();
}

/** Sets libtorch's intra-op thread count (libtorch starts with one thread here). */
export function setNumThreads(n: number = availableParallelism()): void {
  if (!Number.isInteger(n) || n < 1 || n > maxThreads())
    throw new RangeError(`threads must be an integer from 1 to ${maxThreads()} (4 × this machine's ${availableParallelism()} cores), got ${n}`);
  native.setNumThreads(n);
}
/** libtorch's intra-op thread count, as torch.get_num_threads() (setNumThreads sets it). */
export function getNumThreads(): number {
  return native.getNumThreads();
}
/**
 * OpenBLAS's own pool size (-1 when the BLAS is not OpenBLAS). The addon sets
 * it to 1 at load, so only ATen's pool runs in parallel, unless
 * OPENBLAS_NUM_THREADS was set (see native/addon.cc).
 */
export function blasThreads(): number {
  return native.blasThreads();
}
/**
 * libtorch's own multi-line report of its thread pools and their settings (ATen/OpenMP, MKL),
 * as torch.__config__.parallel_info(): for logs and thread-count debugging.
 */
export function parallelInfo(): string {
  return native.parallelInfo();
}
/** Whether a GPU can be used: libtorch was built with CUDA and sees at least one device (torch.cuda.is_available()). */
export function cudaAvailable(): boolean {
  return native.cudaAvailable();
}
/** Number of visible GPUs (0 on a CPU-only libtorch), as torch.cuda.device_count(). */
export function cudaDeviceCount(): number {
  return native.cudaDeviceCount();
}
/** Whether the addon was compiled against a CUDA libtorch (whether or not a GPU is visible now). */
export function cudaBuild(): boolean {
  return native.cudaBuild();
}
/** Why no GPU can be used (CUDA's own words, e.g. no NVIDIA driver), or null when one can. */
export function cudaUnavailableReason(): string | null {
  return native.cudaUnavailableReason();
}
/** The visible GPUs, in index order (empty on a CPU-only libtorch). */
export function cudaDevices(): CudaDevice[] {
  return native.cudaDevices();
}
/** "cuda:0 NVIDIA H200, 139.7 GiB, compute capability 9.0, 132 SMs" */
export function describeCudaDevice(d: CudaDevice): string {
  if (d.name === null) return `cuda:${d.index} (no details: the addon was built without the CUDA runtime's headers)`;
  return `cuda:${d.index} ${d.name}, ${(d.totalMemory / 2 ** 30).toFixed(1)} GiB, compute capability ${d.computeCapability}, ${d.multiprocessors} SMs`;
}
function cudaIndex(device: Device): number {
  return device === 'cuda' ? 0 : Number(device.slice('cuda:'.length));
}
/** Waits until the work queued on a GPU has finished (for timing); nothing to wait for on the CPU. */
export function synchronize(device: Device): void {
  if (device !== 'cpu') native.cudaSynchronize(cudaIndex(device));
}
/**
 * The CUDA caching allocator's figures for one GPU, in bytes, as torch.cuda.memory_stats(): null for 'cpu', or
 * when the addon was built without the CUDA runtime's headers.
 */
export function cudaMemoryStats(device: Device): CudaMemoryStats | null {
  return device === 'cpu' ? null : native.cudaMemoryStats(cudaIndex(device));
}
/**
 * Starts the peaks of cudaMemoryStats afresh from the current figures (torch.cuda.reset_peak_memory_stats);
 * nothing on the CPU.
 */
export function resetCudaPeakMemory(device: Device): void {
  if (device !== 'cpu') native.cudaResetPeakMemory(cudaIndex(device));
}
/**
 * cuDNN's autotuner and TF32 for float32 convolutions and matmuls, as the
 * official training loop sets them: autotuner on, TF32 off (PD_CUDNN_BENCHMARK=0
 * turns the autotuner off; PD_ALLOW_TF32=1 allows TF32, faster on Ampere and
 * later, about 1e-3 relative error). PD_DETERMINISTIC=1 makes runs and resumes
 * bit-identical: deterministic cuDNN algorithms only, autotuner off.
 * resolveDevice applies it when it hands out a CUDA device.
 */
export function applyCudaMathOptions(vars: NodeJS.ProcessEnv = process.env): { benchmark: boolean; tf32: boolean; deterministic: boolean } {
  const deterministic = vars.PD_DETERMINISTIC === '1';
  const o = { benchmark: !deterministic && vars.PD_CUDNN_BENCHMARK !== '0', tf32: vars.PD_ALLOW_TF32 === '1', deterministic };
  native.cudaMathOptions(o.benchmark, o.tf32, o.deterministic);
  return o;
}
/** The process-wide cuDNN/cuBLAS settings now (see CudaMathState). */
export function cudaMathState(): CudaMathState {
  return native.cudaMathState();
}
/** Allows or forbids TF32 in float32 cuDNN convolutions and cuBLAS matrix products, the other settings kept. */
export function setTf32(on: boolean): void {
  const s = cudaMathState();
  native.cudaMathOptions(s.benchmark, on, s.deterministic, on);
}
/**
 * The cuDNN/cuBLAS settings now (TF32, the autotuner, deterministic
 * algorithms), as a function that puts them back: a library call that
 * changes them for its own work leaves the process as it found it (as
 * saveThreads does for the thread count).
 */
export function saveCudaMathState(): () => void {
  const s = cudaMathState();
  return () => native.cudaMathOptions(s.benchmark, s.tf32Cudnn, s.deterministic, s.tf32Cublas);
}
/** 'cuda' when libtorch was built with CUDA and a GPU is visible, else 'cpu'. */
export function defaultDevice(): Device {
  return cudaAvailable() ? 'cuda' : 'cpu';
}
/** Validates a user-given device name against what this build can do. */
export function resolveDevice(name: string | undefined): Device {
  const device = checkedDevice(name);
  if (device !== 'cpu') applyCudaMathOptions();
  return device;
}
function checkedDevice(name: string | undefined): Device {
  if (name === undefined || name === 'auto') return defaultDevice();
  if (name === 'cpu') return 'cpu';
  if (isCudaName(name)) {
    if (!cudaBuild())
      throw new Error(`device '${name}' requested but this libtorch has no CUDA: the addon is a CPU build (${engineInfo().version}); build it against a CUDA libtorch (pip install torch, or set LIBTORCH), see README, "On a GPU"`);
    if (!cudaAvailable())
      throw new Error(`device '${name}' requested, but no GPU is visible: the addon is a CUDA build (libtorch ${engineInfo().version}${engineInfo().cuda ? `, CUDA ${engineInfo().cuda}` : ''}) and CUDA says: ${cudaUnavailableReason() ?? 'no device'}`);
    const count = cudaDeviceCount();
    if (cudaIndex(name) >= count) throw new Error(`device '${name}' does not exist: ${count} GPU(s) visible (cuda:0${count > 1 ? `..cuda:${count - 1}` : ''})`);
    return name;
  }
  throw new Error(`unknown device '${name}': expected cpu, cuda, cuda:N or auto`);
}
/** 'cuda' or 'cuda:N' as the user wrote it (whether that GPU exists is checked apart). */
function isCudaName(name: string): name is Exclude<Device, 'cpu'> {
  return /^cuda(:\d+)?$/.test(name);
}
/** Number of tensor handles not yet disposed (for leak checks). */
export function liveTensors(): number {
  return native.liveTensors();
}
/**
 * V8's running total of external memory, which it weighs when deciding to
 * collect: ArrayBuffers and other addons' reports included. Of our tensors,
 * only those the GC alone can free are in it; tensors a scope owns are not
 * (see ScopedResource.releasedToGc). Compare differences, not absolute values.
 */
export function externalMemoryReported(): number {
  return native.externalMemory();
}
/** The CPU caching allocator's state: its counters (since the process started) and sizes (see CpuCacheStats). */
export function cpuCacheStats(): CpuCacheStats {
  return native.cpuCacheStats();
}
/** Starts the peak of cpuCacheStats().peakAllocatedBytes again from the bytes in use now. */
export function resetCpuPeakMemory(): void {
  native.cpuResetPeakMemory();
}
/**
 * Makes libtorch use only deterministic algorithms, and throw for an op that has none
 * (torch.use_deterministic_algorithms(on)). Process-wide; off by default. For bit-identical CUDA runs see
 * applyCudaMathOptions (PD_DETERMINISTIC=1).
 */
export function setDeterministic(on: boolean): void {
  native.setDeterministic(on);
}

/** Which libtorch this process runs on, and what it can use on this CPU. */
export interface EngineInfo {
  /** libtorch's version, e.g. "2.13.0" or "1.13.1". */
  version: string;
  /** The major version as a number (1 or 2). */
  major: number;
  /** The libtorch_cpu library the addon loaded. */
  library: string | null;
  /** The BLAS libtorch calls for matmuls (from its build settings: mkl, open, …). */
  blas: string;
  /** oneDNN (MKL-DNN) version, or null when libtorch was built without it. */
  onednn: string | null;
  /** The vector ISA ATen's own kernels dispatch to (DEFAULT, AVX2, AVX512). */
  atenCapability: string;
  /** The CUDA runtime a CUDA libtorch was built with (e.g. "13.0"), null for a CPU build. */
  cuda: string | null;
  /** This CPU's model and the relevant ISA extensions it reports (Linux: /proc/cpuinfo). */
  cpuModel: string;
  /** AVX-512 (foundation) is there. */
  avx512: boolean;
  /** AVX-512 BF16 instructions or AMX tiles: hardware bf16 arithmetic for oneDNN's kernels. */
  avx512Bf16: boolean;
  /** AMX tiles for bf16 are there. */
  amxBf16: boolean;
  /** AVX-512 FP16 instructions or AMX FP16 tiles: hardware float16 arithmetic for oneDNN's kernels. */
  avx512Fp16: boolean;
  amxFp16: boolean;
}

/** Flags and model of the first processor in /proc/cpuinfo (empty off Linux). */
function cpuFlags(): { model: string; flags: Set<string> } {
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const model = /^model name\s*:\s*(.*)$/m.exec(text)?.[1]?.trim() ?? 'unknown CPU';
    const flags = new Set((/^flags\s*:\s*(.*)$/m.exec(text)?.[1] ?? '').split(/\s+/));
    return { model, flags };
  } catch {
    return { model: 'unknown CPU', flags: new Set() };
  }
}

/**
 * Which libtorch this process runs (version, library, BLAS, oneDNN, CUDA) and what this CPU offers; reads
 * libtorch's build configuration and /proc/cpuinfo on each call.
 */
export function engineInfo(): EngineInfo {
  const version = native.torchVersion();
  const config = native.buildConfig();
  const { model, flags } = cpuFlags();
  return {
    version,
    major: Number.parseInt(version, 10),
    library: native.torchLibrary(),
    blas: /BLAS_INFO=([^,\s]+)/.exec(config)?.[1] ?? 'unknown',
    onednn: /MKL-DNN v([\d.]+)/.exec(config)?.[1] ?? /oneDNN v([\d.]+)/.exec(config)?.[1] ?? null,
    atenCapability: /CPU capability usage: (\S+)/.exec(config)?.[1] ?? 'unknown',
    cuda: native.cudaBuild() ? (/CUDA Runtime ([\d.]+)/.exec(config)?.[1] ?? /CUDA_VERSION=([\d.]+)/.exec(config)?.[1] ?? 'unknown') : null,
    cpuModel: model,
    avx512: flags.has('avx512f'),
    avx512Bf16: flags.has('avx512_bf16'),
    amxBf16: flags.has('amx_bf16'),
    avx512Fp16: flags.has('avx512_fp16'),
    amxFp16: flags.has('amx_fp16'),
  };
}

/** One line naming the engine and the CPU, for logs and benchmark headers. */
export function describeEngine(e: EngineInfo = engineInfo()): string {
  const isa = [e.avx512 && 'AVX-512', e.avx512Bf16 && 'AVX512-BF16', e.amxBf16 && 'AMX-BF16', e.avx512Fp16 && 'AVX512-FP16', e.amxFp16 && 'AMX-FP16'].filter(Boolean).join(', ') || 'no AVX-512';
  return `libtorch ${e.version}${e.cuda ? ` + CUDA ${e.cuda}` : ''} (BLAS ${e.blas}, oneDNN ${e.onednn ?? 'none'}, ATen ${e.atenCapability}) on ${e.cpuModel} (${isa})`;
}
