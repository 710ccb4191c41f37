// A restricted unpickler: reads Python pickles (protocols 2–5, as torch 1.x
// and 2.x and EDM's snapshots write them) into plain JS values WITHOUT running
// anything. A pickle is a program for a stack machine whose instructions may
// import and call any Python function; here every import (GLOBAL,
// STACK_GLOBAL) is looked up in an allow-list given by the caller, which maps
// it to a builder written in TypeScript; any other global is refused with an
// error naming it. Nothing from the file is ever evaluated.
//
// Why our own rather than npm's `pickleparser` (0.2.1): it decodes LONG1 as
// an unsigned ≤ 8-byte value (torch's 10-byte magic number throws, negative
// longs come out wrong), turns tuples into lists, drops BUILD state on dicts,
// lets unknown globals through as permissive stubs and has no size limits
// (docs/file-formats.md). The opcode set here is the one these
// files use, plus the robustness opcodes of protocols 2–5.
//
// Python values map to: None → null, bool → boolean, int → number (bigint
// beyond 2^53), float → number, str → string, bytes/bytearray → Uint8Array,
// tuple → PyTuple, list → Array, dict → PyDict (a Map that also keeps
// attributes set by BUILD), set/frozenset → Set, an allowed class or function
// → PyGlobal until called.

export class PickleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PickleError';
  }
}

/** A Python tuple (kept apart from lists: the torch rebuild functions take tuples of sizes and strides). */
export class PyTuple {
  constructor(readonly items: readonly unknown[]) {}
}

/** A Python dict; `attributes` holds what BUILD set on it (OrderedDict's `_metadata` in a torch state dict). */
export class PyDict extends Map<unknown, unknown> {
  attributes: Map<string, unknown> | null = null;
}

/** A reference to an allowed global (class or function), as GLOBAL pushes it. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly handler: GlobalHandler,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** What an allowed global may do. Each builder validates its own arguments. */
export interface GlobalHandler {
  /** REDUCE: the global called with positional arguments. */
  call?(args: readonly unknown[], where: string): unknown;
  /** NEWOBJ / NEWOBJ_EX: `cls.__new__(cls, *args)`; BUILD then goes to the object's `[BUILD_STATE]`. */
  create?(args: readonly unknown[], where: string): unknown;
}

/** An object made by a handler accepts BUILD(state) through this method; it returns the built object. */
export const BUILD_STATE = Symbol('pickle BUILD');
export interface Buildable {
  [BUILD_STATE](state: unknown, where: string): unknown;
}

export interface UnpickleOptions {
  /** Names the input in every error (a file, or file:record). */
  source: string;
  /** 'module.name' → handler. Anything not here is refused. */
  globals: ReadonlyMap<string, GlobalHandler>;
  /** BINPERSID/PERSID: resolves a persistent id (torch's storages). Without it persistent ids are refused. */
  persistentLoad?(pid: unknown, where: string): unknown;
  /** Byte offset to start at (the legacy torch format concatenates several pickles). */
  offset?: number;
}

export interface UnpickleResult {
  value: unknown;
  /** Offset just past the STOP opcode. */
  end: number;
}

const MAX_PROTOCOL = 5;
const MAX_STACK = 10_000_000;

const OPCODE_NAMES: Record<number, string> = {
  0x28: 'MARK', 0x2e: 'STOP', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x46: 'FLOAT', 0x49: 'INT', 0x4a: 'BININT',
  0x4b: 'BININT1', 0x4c: 'LONG', 0x4d: 'BININT2', 0x4e: 'NONE', 0x50: 'PERSID', 0x51: 'BINPERSID', 0x52: 'REDUCE',
  0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE', 0x58: 'BINUNICODE', 0x61: 'APPEND',
  0x62: 'BUILD', 0x63: 'GLOBAL', 0x64: 'DICT', 0x7d: 'EMPTY_DICT', 0x65: 'APPENDS', 0x67: 'GET', 0x68: 'BINGET',
  0x69: 'INST', 0x6a: 'LONG_BINGET', 0x6c: 'LIST', 0x5d: 'EMPTY_LIST', 0x6f: 'OBJ', 0x70: 'PUT', 0x71: 'BINPUT',
  0x72: 'LONG_BINPUT', 0x73: 'SETITEM', 0x74: 'TUPLE', 0x29: 'EMPTY_TUPLE', 0x75: 'SETITEMS', 0x47: 'BINFLOAT',
  0x80: 'PROTO', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x85: 'TUPLE1', 0x86: 'TUPLE2', 0x87: 'TUPLE3',
  0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x42: 'BINBYTES', 0x43: 'SHORT_BINBYTES',
  0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x8e: 'BINBYTES8', 0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET',
  0x92: 'NEWOBJ_EX', 0x93: 'STACK_GLOBAL', 0x94: 'MEMOIZE', 0x95: 'FRAME', 0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

/** Little-endian two's-complement integer of any length (LONG1/LONG4). */
export function decodeLong(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
  if (bytes[bytes.length - 1]! & 0x80) v -= 1n << BigInt(8 * bytes.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** A short description of a value for error messages. */
export function describeValue(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof PyTuple) return `tuple of ${v.items.length}`;
  if (v instanceof PyDict) return `dict of ${v.size}`;
  if (v instanceof PyGlobal) return v.qualifiedName;
  if (v instanceof Uint8Array) return `bytes of ${v.length}`;
  if (Array.isArray(v)) return `list of ${v.length}`;
  if (v instanceof Set) return `set of ${v.size}`;
  if (typeof v === 'string') return `'${v.length > 40 ? `${v.slice(0, 40)}…` : v}'`;
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return String(v);
}

/** Reads one pickle from `bytes` (starting at options.offset), refusing every global not in options.globals. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): UnpickleResult {
  const src = options.source;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = options.offset ?? 0;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let opStart = pos;

  const fail = (why: string): never => {
    throw new PickleError(`${src}: ${why} (pickle opcode at byte ${opStart})`);
  };
  const need = (n: number) => {
    if (n < 0 || pos + n > bytes.length) fail(`truncated: needs ${n} more byte(s) but the data ends at byte ${bytes.length}`);
  };
  const take = (n: number): Uint8Array => {
    need(n);
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const u8 = () => (need(1), bytes[pos++]!);
  const u16 = () => (need(2), (pos += 2), view.getUint16(pos - 2, true));
  const u32 = () => (need(4), (pos += 4), view.getUint32(pos - 4, true));
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(bytes.length)) fail(`a length of ${v} bytes exceeds the data`);
    return Number(v);
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('truncated: a text argument has no end of line');
    const s = new TextDecoder('latin1').decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const text = (n: number): string => {
    const raw = take(n);
    try {
      return utf8.decode(raw);
    } catch {
      return fail('a string is not valid UTF-8');
    }
  };
  const push = (v: unknown) => {
    if (stack.length >= MAX_STACK) fail(`the stack outgrew ${MAX_STACK} items`);
    stack.push(v);
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1]!)) fail('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail('no MARK on the stack');
    return stack.splice(m!);
  };
  const copy = (b: Uint8Array) => new Uint8Array(b); // detach from the file's buffer
  const globalRef = (module: string, name: string): PyGlobal => {
    const key = `${module}.${name}`;
    const handler = options.globals.get(key);
    if (!handler)
      fail(`refuses the global '${key}': it is not one of the ${options.globals.size} classes and functions this reader allows ` +
        `(a pickle can run any Python function it names; nothing was run)`);
    return new PyGlobal(module, name, handler!);
  };
  const setItems = (target: unknown, items: unknown[]) => {
    if (!(target instanceof Map)) fail(`SETITEM(S) on ${describeValue(target)}, expected a dict`);
    if (items.length % 2) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) (target as Map<unknown, unknown>).set(hashable(items[i]), items[i + 1]);
  };
  const hashable = (k: unknown): unknown => {
    if (k === null || ['string', 'number', 'bigint', 'boolean'].includes(typeof k)) return k;
    if (k instanceof PyTuple) return k; // by identity: enough for the files read here
    return fail(`a dict key of type ${describeValue(k)} is not supported`);
  };
  const call = (fn: unknown, args: unknown, kind: 'REDUCE' | 'NEWOBJ'): unknown => {
    if (!(fn instanceof PyGlobal)) return fail(`${kind} on ${describeValue(fn)}, expected an allowed class or function`);
    if (!(args instanceof PyTuple)) return fail(`${kind} of ${fn.qualifiedName} with ${describeValue(args)}, expected a tuple of arguments`);
    const where = `${src}: ${fn.qualifiedName}`;
    const builder = kind === 'REDUCE' ? fn.handler.call : fn.handler.create;
    if (!builder) return fail(`${fn.qualifiedName} cannot be used with ${kind} here`);
    return builder.call(fn.handler, args.items, where);
  };

  for (;;) {
    opStart = pos;
    const op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const v = u8();
        if (v > MAX_PROTOCOL) fail(`pickle protocol ${v} is newer than the supported 2–${MAX_PROTOCOL}`);
        break;
      }
      case 0x95: // FRAME: a length hint only
        u64();
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || marks.length) fail(`STOP with ${stack.length} items on the stack, expected 1`);
        return { value: stack[0], end: pos };
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      case 0x4e: push(null); break; // NONE
      case 0x88: push(true); break; // NEWTRUE
      case 0x89: push(false); break; // NEWFALSE
      case 0x4a: need(4); push(view.getInt32(pos, true)); pos += 4; break; // BININT
      case 0x4b: push(u8()); break; // BININT1
      case 0x4d: push(u16()); break; // BININT2
      case 0x8a: push(decodeLong(take(u8()))); break; // LONG1
      case 0x8b: { // LONG4
        const n = u32();
        if (n > 1 << 20) fail(`a ${n}-byte integer is implausible`);
        push(decodeLong(take(n)));
        break;
      }
      case 0x47: need(8); push(view.getFloat64(pos, false)); pos += 8; break; // BINFLOAT (big-endian)
      case 0x8c: push(text(u8())); break; // SHORT_BINUNICODE
      case 0x58: push(text(u32())); break; // BINUNICODE
      case 0x8d: push(text(u64())); break; // BINUNICODE8
      case 0x43: push(copy(take(u8()))); break; // SHORT_BINBYTES
      case 0x42: push(copy(take(u32()))); break; // BINBYTES
      case 0x8e: push(copy(take(u64()))); break; // BINBYTES8
      case 0x96: push(copy(take(u64()))); break; // BYTEARRAY8
      case 0x55: push(new TextDecoder('latin1').decode(take(u8()))); break; // SHORT_BINSTRING (Python 2 str)
      case 0x54: { // BINSTRING
        need(4);
        const n = view.getInt32(pos, true);
        pos += 4;
        if (n < 0) fail('BINSTRING with a negative length');
        push(new TextDecoder('latin1').decode(take(n)));
        break;
      }
      case 0x29: push(new PyTuple([])); break; // EMPTY_TUPLE
      case 0x74: push(new PyTuple(popMark())); break; // TUPLE
      case 0x85: push(new PyTuple([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); push(new PyTuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); push(new PyTuple([a, b, c])); break; } // TUPLE3
      case 0x5d: push([]); break; // EMPTY_LIST
      case 0x6c: push(popMark()); break; // LIST
      case 0x61: { // APPEND
        const v = pop();
        const list = top();
        if (!Array.isArray(list)) fail(`APPEND to ${describeValue(list)}, expected a list`);
        (list as unknown[]).push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        const list = top();
        if (!Array.isArray(list)) fail(`APPENDS to ${describeValue(list)}, expected a list`);
        for (const v of items) (list as unknown[]).push(v);
        break;
      }
      case 0x7d: push(new PyDict()); break; // EMPTY_DICT
      case 0x64: { const d = new PyDict(); setItems(d, popMark()); push(d); break; } // DICT
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x8f: push(new Set()); break; // EMPTY_SET
      case 0x90: { // ADDITEMS
        const items = popMark();
        const set = top();
        if (!(set instanceof Set)) fail(`ADDITEMS to ${describeValue(set)}, expected a set`);
        for (const v of items) (set as Set<unknown>).add(hashable(v));
        break;
      }
      case 0x91: push(new Set(popMark().map(hashable))); break; // FROZENSET
      case 0x63: { const module = line(); const name = line(); push(globalRef(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        push(globalRef(module as string, name as string));
        break;
      }
      case 0x52: { const args = pop(); const fn = pop(); push(call(fn, args, 'REDUCE')); break; } // REDUCE
      case 0x81: { const args = pop(); const cls = pop(); push(call(cls, args, 'NEWOBJ')); break; } // NEWOBJ
      case 0x92: { // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(kwargs instanceof Map) || kwargs.size) fail('NEWOBJ_EX with keyword arguments is not supported');
        push(call(cls, args, 'NEWOBJ'));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const obj = top();
        let built: unknown;
        if (obj instanceof PyDict && state instanceof Map) {
          // A dict subclass's __dict__ (OrderedDict carrying torch's _metadata).
          obj.attributes ??= new Map();
          for (const [k, v] of state) obj.attributes.set(String(k), v);
          built = obj;
        } else if (obj !== null && typeof obj === 'object' && BUILD_STATE in obj) {
          built = (obj as Buildable)[BUILD_STATE](state, `${src}: BUILD of ${describeValue(obj)}`);
        } else fail(`BUILD on ${describeValue(obj)}, which takes no state`);
        stack[stack.length - 1] = built;
        break;
      }
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: { // BINGET, LONG_BINGET
        const k = op === 0x68 ? u8() : u32();
        if (!memo.has(k)) fail(`memo entry ${k} was never stored`);
        push(memo.get(k));
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!options.persistentLoad) fail('a persistent id (an external storage) appears where none is expected');
        push(options.persistentLoad!(pid, src));
        break;
      }
      case 0x50: { // PERSID (text)
        const pid = line();
        if (!options.persistentLoad) fail('a persistent id (an external storage) appears where none is expected');
        push(options.persistentLoad!(pid, src));
        break;
      }
      default: {
        const name = OPCODE_NAMES[op];
        fail(name
          ? `the opcode ${name} is not supported (protocol 0/1 text opcodes and out-of-band buffers are not read)`
          : `byte 0x${op.toString(16).padStart(2, '0')} is not a pickle opcode: the file is corrupt or not a pickle`);
      }
    }
  }
}
