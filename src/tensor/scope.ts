// Deterministic freeing of tensors, in the spirit of tf.tidy: every tensor
// created while a scope runs is disposed when it ends, except the ones the
// scope returns (found anywhere inside arrays, plain objects or Maps), which
// move to the enclosing scope. Finalisers remain only a safety net: native
// memory is released at the end of each scope, not whenever the GC runs.

export interface ScopedResource {
  dispose(): void;
}

const stack: Set<ScopedResource>[] = [];

/** Called by every new tensor: the innermost running scope takes ownership. */
export function trackInScope(resource: ScopedResource): void {
  stack[stack.length - 1]?.add(resource);
}

/** Removes a resource from the innermost scope that owns it, so it outlives it. */
export function keep<T extends ScopedResource>(resource: T): T {
  for (let k = stack.length - 1; k >= 0; k--) {
    if (stack[k]!.delete(resource)) break;
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
 * Runs `fn` and disposes every tensor it created except those in its result.
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
