// Process-wide libtorch settings: threads, devices, live-tensor count.
import { availableParallelism } from 'node:os';
import { native } from './native.js';
import type { Device } from './tensor.js';

/** Sets libtorch's intra-op thread count (libtorch starts with one thread here). */
export function setNumThreads(n: number = availableParallelism()): void {
  native.setNumThreads(n);
}
export function getNumThreads(): number {
  return native.getNumThreads() as number;
}
/**
 * OpenBLAS's own pool size (-1 when the BLAS is not OpenBLAS). The addon sets
 * it to 1 at load, so only ATen's pool runs in parallel, unless
 * OPENBLAS_NUM_THREADS was set (see native/addon.cc).
 */
export function blasThreads(): number {
  return native.blasThreads() as number;
}
export function parallelInfo(): string {
  return native.parallelInfo() as string;
}
export function cudaAvailable(): boolean {
  return native.cudaAvailable() as boolean;
}
export function cudaDeviceCount(): number {
  return native.cudaDeviceCount() as number;
}
/** 'cuda' when libtorch was built with CUDA and a GPU is visible, else 'cpu'. */
export function defaultDevice(): Device {
  return cudaAvailable() ? 'cuda' : 'cpu';
}
/** Validates a user-given device name against what this build can do. */
export function resolveDevice(name: string | undefined): Device {
  if (name === undefined || name === 'auto') return defaultDevice();
  if (name === 'cpu') return 'cpu';
  if (/^cuda(:\d+)?$/.test(name)) {
    if (!cudaAvailable())
      throw new Error(`device '${name}' requested but this libtorch has no CUDA (build against a CUDA libtorch: pip install torch, or set LIBTORCH)`);
    return name as Device;
  }
  throw new Error(`unknown device '${name}': expected cpu, cuda, cuda:N or auto`);
}
/** Number of tensor handles not yet disposed (for leak checks). */
export function liveTensors(): number {
  return native.liveTensors() as number;
}
/**
 * V8's running total of external memory, which it weighs when deciding to
 * collect: ArrayBuffers and other addons' reports included. Of our tensors,
 * only those the GC alone can free are in it; tensors a scope owns are not
 * (see ScopedResource.releasedToGc). Compare differences, not absolute values.
 */
export function externalMemoryReported(): number {
  return native.externalMemory() as number;
}
/**
 * The caching allocator for CPU tensor storage (native/cpu_allocator.cc):
 * blocks of 64 KiB and more are kept for reuse after they are freed, up to
 * `capBytes` idle (PD_CPU_CACHE_MB, default 2048; 0 turns it off).
 */
export interface CpuCacheStats {
  enabled: boolean;
  /** Requests of 64 KiB and more served from the cache, and not. */
  hits: number;
  misses: number;
  /** Bytes of freed blocks held for reuse. */
  cachedBytes: number;
  capBytes: number;
}
export function cpuCacheStats(): CpuCacheStats {
  return native.cpuCacheStats() as CpuCacheStats;
}
export function setDeterministic(on: boolean): void {
  native.setDeterministic(on);
}
