// The base of every network: named parameters, buffers and sub-modules, with
// PyTorch's state-dict naming ("enc.16x16_conv.weight"), so the official
// weights map 1:1 onto ours and our snapshots read back into PyTorch.
import { replaceData } from '../tensor/parameter-updates.js';
import { noGrad } from '../tensor/autograd.js';
import { keep, scope } from '../tensor/scope.js';
import type { Device, DType, Tensor } from '../tensor/tensor.js';

/**
 * The base class of every network, as torch.nn.Module: a subclass registers its parameters, buffers and child
 * modules in its constructor (registerParameter, registerBuffer, registerModule) and computes in its own forward
 * method. The names are PyTorch's state-dict keys ("enc.16x16_conv.weight"), so the official weights load 1:1
 * through loadStateDict and stateDict's tensors read back into PyTorch.
 *
 * A module owns its parameters and buffers: registering takes them out of the running scope() (keep), so a module
 * may be built inside one, and the module's dispose() frees them.
 */
export abstract class Module {
  /** Training mode (dropout and the like active); set through train() and eval(), which reach the children too. */
  training = true;
  readonly #parameters = new Map<string, Tensor>();
  readonly #buffers = new Map<string, Tensor>();
  readonly #children = new Map<string, Module>();

  /** Registers a trainable tensor (it is made to require grad) and returns it. */
  protected registerParameter(name: string, t: Tensor): Tensor {
    this.#checkFree(name);
    keep(t).requiresGrad_(true);
    this.#parameters.set(name, t);
    return t;
  }
  /** Registers a non-trainable tensor that is saved in the state dict (e.g. a filter). */
  protected registerBuffer(name: string, t: Tensor): Tensor {
    this.#checkFree(name);
    this.#buffers.set(name, keep(t));
    return t;
  }
  /** Registers a child; its entries appear under `name.` in the state dict. */
  protected registerModule<M extends Module>(name: string, m: M): M {
    this.#checkFree(name);
    this.#children.set(name, m);
    return m;
  }

  #checkFree(name: string): void {
    if (name.includes('.') || name === '') throw new Error(`invalid module entry name '${name}'`);
    if (this.#parameters.has(name) || this.#buffers.has(name) || this.#children.has(name))
      throw new Error(`'${name}' is registered twice in ${this.constructor.name}`);
  }

  /** The direct children with their names, in registration order. */
  children(): [string, Module][] {
    return [...this.#children];
  }

  /** Parameters in registration order, with dotted names. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, p] of this.#parameters) out.push([prefix + n, p]);
    for (const [n, m] of this.#children) out.push(...m.namedParameters(`${prefix}${n}.`));
    return out;
  }
  /** Buffers in registration order, with dotted names (the children's after this module's own). */
  namedBuffers(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, b] of this.#buffers) out.push([prefix + n, b]);
    for (const [n, m] of this.#children) out.push(...m.namedBuffers(`${prefix}${n}.`));
    return out;
  }
  /** The parameters (the live tensors) in namedParameters order: what an optimizer takes. */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }
  /** Total number of trainable scalars. */
  parameterCount(): number {
    return this.parameters().reduce((sum, p) => sum + p.numel, 0);
  }

  /** Parameters and buffers by name (the live tensors, not copies). */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers()]);
  }

  /**
   * Copies values into this module's tensors (any device or float dtype in,
   * converted). `strict` requires the same set of names; shapes must always match.
   */
  loadStateDict(state: Map<string, Tensor>, options: { strict?: boolean; prefix?: string } = {}): void {
    const strict = options.strict ?? true;
    const prefix = options.prefix ?? '';
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !state.has(prefix + k));
    const unexpected = [...state.keys()].filter((k) => k.startsWith(prefix) && !own.has(k.slice(prefix.length)));
    if (strict && (missing.length || unexpected.length)) {
      const show = (xs: string[]) => xs.slice(0, 8).join(', ') + (xs.length > 8 ? `, … (${xs.length} in all)` : '');
      throw new Error(
        `loadStateDict(${this.constructor.name}): ` +
          (missing.length ? `missing ${show(missing)}` : '') +
          (missing.length && unexpected.length ? '; ' : '') +
          (unexpected.length ? `unexpected ${show(unexpected)}` : ''),
      );
    }
    noGrad(() => {
      for (const [name, target] of own) {
        const src = state.get(prefix + name);
        if (!src) continue;
        if (src.shape.length !== target.shape.length || src.shape.some((d, k) => d !== target.shape[k]))
          throw new Error(`loadStateDict: '${prefix + name}' has shape [${src.shape}] but the module expects [${target.shape}]`);
        target.copy_(src);
      }
    });
  }

  /** Moves every parameter and buffer to a device and/or float dtype, keeping the same tensor objects. */
  to(target: { device?: Device; dtype?: DType }): this {
    noGrad(() => {
      for (const [, t] of [...this.namedParameters(), ...this.namedBuffers()]) scope(() => replaceData(t, t.to(target)));
    });
    return this;
  }

  /** Sets training mode (or, with false, evaluation mode) on this module and all its children. */
  train(on = true): this {
    this.training = on;
    for (const [, m] of this.#children) m.train(on);
    return this;
  }
  /** Sets evaluation mode: train(false). */
  eval(): this {
    return this.train(false);
  }

  /** Frees every parameter and buffer. */
  dispose(): void {
    for (const [, t] of [...this.namedParameters(), ...this.namedBuffers()]) t.dispose();
  }
}

/** An ordered collection of named children (PyTorch's ModuleDict). */
export class ModuleDict<M extends Module = Module> extends Module {
  readonly #entries = new Map<string, M>();
  set(name: string, m: M): M {
    this.#entries.set(name, this.registerModule(name, m));
    return m;
  }
  get(name: string): M {
    const m = this.#entries.get(name);
    if (!m) throw new Error(`ModuleDict has no entry '${name}'`);
    return m;
  }
  has(name: string): boolean {
    return this.#entries.has(name);
  }
  entries(): [string, M][] {
    return [...this.#entries];
  }
}

/** A list of children named 0, 1, 2, … (PyTorch's ModuleList). */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[] = [];
  push(m: M): M {
    this.items.push(this.registerModule(String(this.items.length), m));
    return m;
  }
}
