// A small builder of ONNX inference graphs: unique value names, float32
// weights and int64 constants as initializers, and one method per operator
// the exporter uses (their ONNX-17 signatures). Each node is named after the
// module it comes from, so a graph viewer shows `model.enc.16x16_block0.norm0`.
import { AttributeType, DataType, type AttributeProto, type GraphProto, type NodeProto, type TensorProto, type ValueInfoProto } from './proto.js';

/** A value in the graph (a node output, a graph input or an initializer), by name. */
export type Value = string;

type AttrValue = number | string | number[] | { floats: number[] } | { float: number };

function attribute(name: string, v: AttrValue): AttributeProto {
  if (typeof v === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(v) };
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`ONNX attribute ${name}: ${v} is not an integer (pass { float: v } for a float)`);
    return { name, type: AttributeType.INT, i: v };
  }
  if (Array.isArray(v)) return { name, type: AttributeType.INTS, ints: v };
  if ('floats' in v) return { name, type: AttributeType.FLOATS, floats: v.floats };
  return { name, type: AttributeType.FLOAT, f: v.float };
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  // Float32Array/BigInt64Array hold the host's byte order; ONNX wants little-endian, which every
  // platform Node runs on (x86-64, arm64) is.
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  readonly inputs: ValueInfoProto[] = [];
  readonly outputs: ValueInfoProto[] = [];
  readonly #names = new Set<string>();
  readonly #int64Constants = new Map<string, Value>();
  readonly #floatScalars = new Map<number, Value>();
  /** The module path that nodes added now are named after. */
  scope = '';

  /** A fresh value name: `base`, or `base_2`, `base_3`, … */
  fresh(base: string): Value {
    let name = base;
    for (let k = 2; this.#names.has(name); k++) name = `${base}_${k}`;
    this.#names.add(name);
    return name;
  }

  /** Declares a float32 graph input; dims are sizes or symbolic names (dynamic). */
  input(name: string, dims: (number | string)[], doc?: string): Value {
    if (this.#names.has(name)) throw new Error(`ONNX graph: input name '${name}' is taken`);
    this.#names.add(name);
    this.inputs.push(valueInfo(name, dims, doc));
    return name;
  }
  /**
   * Marks `value` as a graph output named `name`: the node that makes it has
   * its output renamed (no Identity node, which onnxruntime-web's WebGPU
   * provider has no kernel for), so `value` must not be used by another node.
   */
  output(value: Value, name: string, dims: (number | string)[], doc?: string): void {
    if (value !== name) {
      if (this.#names.has(name)) throw new Error(`ONNX graph: output name '${name}' is taken`);
      const maker = this.nodes.find((n) => n.output.includes(value));
      if (!maker || this.nodes.some((n) => n.input.includes(value)))
        throw new Error(`ONNX graph: '${value}' cannot be renamed to the output '${name}' (it is ${maker ? 'used by another node' : 'not a node output'})`);
      maker.output = maker.output.map((o) => (o === value ? name : o));
      this.#names.add(name);
    }
    this.outputs.push(valueInfo(name, dims, doc));
  }

  /** A float32 initializer (weights). */
  weight(name: string, data: Float32Array, dims: readonly number[]): Value {
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new Error(`ONNX graph: initializer ${name} has ${data.length} values for dims [${dims}]`);
    const v = this.fresh(name);
    this.initializers.push({ name: v, dims: [...dims], dataType: DataType.FLOAT, rawData: bytesOf(data) });
    return v;
  }
  /** A float32 scalar constant (shared between uses of the same value). */
  scalar(value: number): Value {
    const key = Math.fround(value);
    let v = this.#floatScalars.get(key);
    if (!v) {
      v = this.fresh(`const_f32_${this.#floatScalars.size}`);
      this.initializers.push({ name: v, dims: [], dataType: DataType.FLOAT, rawData: bytesOf(new Float32Array([key])) });
      this.#floatScalars.set(key, v);
    }
    return v;
  }
  /** An int64 constant (a shape, axes, sizes; shared between uses of the same values); `scalar` gives a 0-dim tensor. */
  int64s(values: readonly number[], scalar = false): Value {
    const key = `${scalar ? 's' : 'v'}${values.join(',')}`;
    let v = this.#int64Constants.get(key);
    if (!v) {
      v = this.fresh(`const_i64_${this.#int64Constants.size}`);
      this.initializers.push({
        name: v, dims: scalar ? [] : [values.length], dataType: DataType.INT64, rawData: bytesOf(BigInt64Array.from(values, (x) => BigInt(x))),
      });
      this.#int64Constants.set(key, v);
    }
    return v;
  }

  /** Adds a node; returns its outputs. */
  node(opType: string, inputs: Value[], attrs: Record<string, AttrValue> = {}, outputs = 1): Value[] {
    const base = this.scope ? `${this.scope}/${opType}` : opType;
    const name = this.fresh(base);
    const out = outputs === 1 ? [name] : Array.from({ length: outputs }, (_, k) => this.fresh(`${name}:${k}`));
    this.nodes.push({
      name, opType, input: inputs, output: out,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return out;
  }
  op(opType: string, inputs: Value[], attrs: Record<string, AttrValue> = {}): Value {
    return this.node(opType, inputs, attrs)[0]!;
  }

  // ---- the operators (ONNX opset 17) -------------------------------------------------------
  add = (a: Value, b: Value) => this.op('Add', [a, b]);
  sub = (a: Value, b: Value) => this.op('Sub', [a, b]);
  mul = (a: Value, b: Value) => this.op('Mul', [a, b]);
  div = (a: Value, b: Value) => this.op('Div', [a, b]);
  sqrt = (a: Value) => this.op('Sqrt', [a]);
  reciprocal = (a: Value) => this.op('Reciprocal', [a]);
  log = (a: Value) => this.op('Log', [a]);
  neg = (a: Value) => this.op('Neg', [a]);
  cos = (a: Value) => this.op('Cos', [a]);
  sin = (a: Value) => this.op('Sin', [a]);
  sigmoid = (a: Value) => this.op('Sigmoid', [a]);
  /** SiLU: x·σ(x). */
  silu = (a: Value) => this.mul(a, this.sigmoid(a));
  concat = (values: Value[], axis: number) => this.op('Concat', values, { axis });
  reshape = (a: Value, shape: Value) => this.op('Reshape', [a, shape]);
  shape = (a: Value) => this.op('Shape', [a]);
  unsqueeze = (a: Value, axes: number[]) => this.op('Unsqueeze', [a, this.int64s(axes)]);
  transpose = (a: Value, perm: number[]) => this.op('Transpose', [a], { perm });
  matmul = (a: Value, b: Value) => this.op('MatMul', [a, b]);
  softmax = (a: Value, axis: number) => this.op('Softmax', [a], { axis });
  /** Takes index `index` along `axis`, dropping the axis. */
  gather = (a: Value, index: number, axis: number) => this.op('Gather', [a, this.int64s([index], true)], { axis });
  split = (a: Value, sizes: number[], axis: number) => this.node('Split', [a, this.int64s(sizes)], { axis }, sizes.length);
  reduceMean = (a: Value, axes: number[]) => this.op('ReduceMean', [a], { axes, keepdims: 1 });
}

function valueInfo(name: string, dims: (number | string)[], doc?: string): ValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
    ...(doc ? { docString: doc } : {}),
  };
}

export function toGraphProto(g: GraphBuilder, name: string, doc?: string): GraphProto {
  return { name, node: g.nodes, initializer: g.initializers, input: g.inputs, output: g.outputs, ...(doc ? { docString: doc } : {}) };
}
