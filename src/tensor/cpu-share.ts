// Thread count that follows the cores other processes leave free. With all
// cores in one OpenMP team, a competing process that takes one core stalls
// the whole team at every barrier (work is split evenly, so every op waits
// for the thread that shares its core): measured on 2 cores, one busy
// process made a training step 2.6-3.5× slower at 2 threads whatever the
// OpenMP wait policy, and 1.0× at 1 thread (RESULTS.md, "Under load"). So,
// between steps, every couple of seconds: read the machine's busy time
// (/proc/stat) and this process's own CPU time, and give libtorch the cores
// the others are not using (at least one). Only when the user did not fix
// the thread count (--threads N); Linux only (elsewhere the count stays).
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { native } from './native.js';

const USER_HZ = 100; // /proc/stat's unit on Linux (sysconf(_SC_CLK_TCK))

interface Sample {
  wallMs: number;
  machineBusySec: number;
  ownSec: number;
}

function machineBusySec(): number | null {
  try {
    const cpu = /^cpu\s+(.*)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]?.split(/\s+/).map(Number);
    if (!cpu || cpu.length < 4) return null;
    // user nice system idle iowait irq softirq steal …: busy is all but idle and iowait.
    const total = cpu.slice(0, 8).reduce((a, b) => a + (b || 0), 0);
    return (total - cpu[3]! - (cpu[4] ?? 0)) / USER_HZ;
  } catch {
    return null;
  }
}

function sample(): Sample | null {
  const busy = machineBusySec();
  if (busy === null) return null;
  const own = process.cpuUsage();
  return { wallMs: performance.now(), machineBusySec: busy, ownSec: (own.user + own.system) / 1e6 };
}

/** Cores that others kept busy between two samples. */
export function othersBusyCores(a: Sample, b: Sample): number {
  const wallSec = (b.wallMs - a.wallMs) / 1000;
  if (wallSec <= 0) return 0;
  return Math.max(0, (b.machineBusySec - a.machineBusySec - (b.ownSec - a.ownSec)) / wallSec);
}

/** The thread count when others keep `othersBusy` of `maxThreads` cores busy (a core counts as taken when others use more than ~60% of it). */
export function threadsFor(maxThreads: number, othersBusy: number): number {
  return Math.max(1, Math.min(maxThreads, Math.round(maxThreads - othersBusy + 0.1)));
}

let policy: { maxThreads: number; intervalMs: number; last: Sample | null } | null = null;

/**
 * Follow the free cores (up to `maxThreads`) from now on, or stop following
 * (null) and keep whatever count is set. Starts at `maxThreads`.
 */
export function followFreeCores(maxThreads: number | null = availableParallelism(), intervalMs = 2000): void {
  if (maxThreads === null) {
    policy = null;
    return;
  }
  native.setNumThreads(maxThreads);
  policy = { maxThreads, intervalMs, last: sample() };
  if (!policy.last) policy = null; // no /proc/stat: a fixed count
}

/** Call between steps: cheap unless `intervalMs` has passed; then adjusts the thread count. Returns the count in use. */
export function adaptThreads(): number {
  if (policy?.last) {
    const now = performance.now();
    if (now - policy.last.wallMs >= policy.intervalMs) {
      const s = sample();
      if (s) {
        const want = threadsFor(policy.maxThreads, othersBusyCores(policy.last, s));
        if (want !== native.getNumThreads()) native.setNumThreads(want);
        policy.last = s;
      }
    }
  }
  return native.getNumThreads();
}

/** `threads` fixes the count; undefined follows the free cores (the default of train and generate). */
export function useThreads(threads: number | undefined): void {
  if (threads === undefined) followFreeCores();
  else {
    followFreeCores(null);
    native.setNumThreads(threads);
  }
}

/**
 * The thread settings now (libtorch's count and whether it follows the free
 * cores), as a function that puts them back: a library call that changes them
 * for its own work leaves the process as it found it.
 */
export function saveThreads(): () => void {
  const threads = native.getNumThreads();
  const saved = policy ? { ...policy } : null;
  return () => {
    policy = saved;
    if (native.getNumThreads() !== threads) native.setNumThreads(threads);
  };
}
