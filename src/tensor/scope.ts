// Deterministic freeing of tensors, in the spirit of tf.tidy: every tensor
// created while a scope runs is disposed when it ends, except the ones the
// scope returns (found anywhere inside arrays, plain objects or Maps), which
// move to the enclosing scope. Finalisers remain only a safety net: native
// memory is released at the end of each scope, not whenever the GC runs.
//
// Which to use when:
// - scope() for temporaries: tensors a function makes only to compute its
//   result. It frees them on every path, errors included, which a list of
//   dispose() calls at the end of the function does not.
// - dispose() for owned state: tensors that outlive any one scope (a
//   module's parameters, optimizer moments, an accumulator's sums, a loaded
//   file's tensors until a network has copied them, a sampler's state
//   between steps) are freed by their owner when it is done with them, and
//   made inside a scope they must be kept (keep(), or returned).
// - Not scope() around code that builds an object holding tensors (a
//   Module, a class): its result is not searched, so those tensors would be
//   freed with the temporaries.

export interface ScopedResource {
  dispose(): void;
  /**
   * Called once no scope owns the resource any more and only the GC can free
   * it (created outside every scope, kept, or returned from the outermost
   * one). Tensors report their native bytes to V8 here, and only here: a
   * scope frees its tensors itself, so V8 need not hear of them.
   */
  releasedToGc?(): void;
}

const stack: Set<ScopedResource>[] = [];

/** Called by every new tensor: the innermost running scope takes ownership, else the GC. */
export function trackInScope(resource: ScopedResource): void {
  const innermost = stack[stack.length - 1];
  if (innermost) innermost.add(resource);
  else resource.releasedToGc?.();
}

/** Removes a resource from the innermost scope that owns it, so it outlives it (its owner then frees it with dispose()). */
export function keep<T extends ScopedResource>(resource: T): T {
  for (let k = stack.length - 1; k >= 0; k--) {
    if (stack[k]!.delete(resource)) {
      resource.releasedToGc?.();
      break;
    }
  }
  return resource;
}

function collectReturned(value: unknown, owned: Set<ScopedResource>, found: Set<ScopedResource>, seen: Set<unknown>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (owned.has(value as ScopedResource)) {
    found.add(value as ScopedResource);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collectReturned(v, owned, found, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collectReturned(v, owned, found, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectReturned(v, owned, found, seen);
  }
}

/**
 * Runs `fn` and disposes every tensor it created except those in its result
 * (tensors, or arrays, plain objects and Maps of them); those move to the
 * enclosing scope. The way to free temporaries (see the top of this file).
 * Synchronous on purpose: an `await` inside would let unrelated code create
 * tensors into this scope.
 */
export function scope<T>(fn: () => T): T {
  const owned = new Set<ScopedResource>();
  stack.push(owned);
  let result: T;
  try {
    result = fn();
    if (result instanceof Promise) throw new Error('scope(): the function must be synchronous (it returned a Promise)');
  } catch (err) {
    stack.pop();
    for (const r of owned) r.dispose();
    throw err;
  }
  stack.pop();
  const returned = new Set<ScopedResource>();
  collectReturned(result, owned, returned, new Set());
  for (const r of owned) if (!returned.has(r)) r.dispose();
  for (const r of returned) trackInScope(r);
  return result;
}
