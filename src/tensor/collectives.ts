// Thin typed binding of the addon's c10d collectives (native/dist.cc): one
// Gloo or NCCL process group per process, joined once. Every call blocks until the
// collective has finished on this rank (but backwardOverlapped, which leaves its
// all-reduce running for awaitGradients); src/distributed builds the training
// semantics (what to reduce, when, and the error messages) on top.
import { native } from './native.js';
import type { Tensor } from './tensor.js';
import type { CollectiveBackend } from './engine-types.js';
export type { CollectiveBackend } from './engine-types.js';

export interface JoinArgs {
  masterAddr: string;
  masterPort: number;
  rank: number;
  worldSize: number;
  /** Bounds the rendezvous (store connection, waiting for every rank). */
  joinTimeoutMs: number;
  /** Bounds every collective (Gloo's context timeout). */
  timeoutMs: number;
  /** This rank hosts the TCPStore (rank 0, unless an agent such as torchrun's hosts it). */
  hostStore: boolean;
  /** Key prefix in the store (torchrun's agent store uses /worker/attempt_N). */
  storePrefix: string;
  /** Address Gloo's sockets bind to and advertise ('' for what the hostname resolves to). */
  deviceHost: string;
  /** Network interface for Gloo (GLOO_SOCKET_IFNAME); wins over deviceHost. */
  networkInterface: string;
  /** Printed before the process exits if the rendezvous is still stuck 10 s after joinTimeoutMs (where c10d's own timeout does not fire). */
  stuckMessage: string;
  /** 'gloo' (CPU collectives; the default) or 'nccl' (CUDA collectives, on GPU `cudaDevice`). */
  backend?: CollectiveBackend;
  cudaDevice?: number;
}


/** Whether the addon can join a group at all (built with Gloo's or NCCL's headers). */
export function collectivesAvailable(): boolean {
  return native.distAvailable();
}

/** The process-group backends this build has: 'gloo' with gloo's headers, 'nccl' in a CUDA build with NCCL's. */
export function collectiveBackends(): CollectiveBackend[] {
  return native.distBackends();
}

export function joinProcessGroup(a: JoinArgs): void {
  // The store's timeout bounds the rendezvous; the group's bounds each collective.
  native.distInit(a.masterAddr, a.masterPort, a.rank, a.worldSize, a.joinTimeoutMs, a.hostStore, a.storePrefix, a.deviceHost, a.networkInterface, a.timeoutMs, a.stuckMessage,
    a.backend ?? 'gloo', a.cudaDevice ?? 0);
}

/** Sums a contiguous tensor over all ranks, in place (a copy travels to the backend's device and back when it lives elsewhere). */
export function allreduceSum(t: Tensor): void {
  native.distAllreduceSum(t.handle);
}

/** Every tensor takes the values of rank `root`'s, in place. */
export function broadcast(tensors: readonly Tensor[], root: number): void {
  native.distBroadcast(tensors.map((t) => t.handle), root);
}

/**
 * Replaces each parameter's gradient by its mean over the ranks (zeros where
 * a parameter has no gradient), through flat buckets of at most `bucketBytes`.
 * Returns the number of buckets.
 */
export function averageGradients(params: readonly Tensor[], bucketBytes: number): number {
  return native.distAverageGradients(params.map((t) => t.handle), bucketBytes);
}

/** What `backwardOverlapped` did: its buckets, how many were launched before backward returned, and the parameters this backward gave no gradient. */
export interface OverlapReport {
  buckets: number;
  launchedDuringBackward: number;
  unusedParams: number;
}

/**
 * Runs `loss.backward()` (a scalar) and, while it runs, all-reduces the
 * gradients of `params` bucket by bucket as each bucket's gradients become
 * final (DDP's overlap: buckets in reverse parameter order, the first closed
 * at `firstBucketBytes`, the others at `bucketBytes`). Every bucket has been
 * launched when it returns; `awaitGradients` must follow before the gradients
 * are used. For the last accumulation round only: the earlier rounds run a
 * plain backward.
 */
export function backwardOverlapped(loss: Tensor, params: readonly Tensor[], bucketBytes: number, firstBucketBytes: number): OverlapReport {
  const [buckets, launchedDuringBackward, unusedParams] = native.distBackwardOverlapped(loss.handle, params.map((t) => t.handle), bucketBytes, firstBucketBytes);
  return { buckets, launchedDuringBackward, unusedParams };
}

/** Waits for `backwardOverlapped`'s all-reduce and replaces each gradient by its mean over the ranks (zeros where none). Returns the number of buckets. */
export function awaitGradients(): number {
  return native.distAwaitGradients();
}

export function barrier(): void {
  native.distBarrier();
}
