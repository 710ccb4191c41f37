// The typed table of the addon (`NativeFunctionName` in src/tensor/native.ts)
// and the built addon must list the same functions, so neither can drift.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { native } from '../src/tensor/native.js';

function packageRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) {
    const parent = dirname(d);
    assert.notEqual(parent, d, 'package root not found');
    d = parent;
  }
  return d;
}

const root = packageRoot();

/** The names in the `NativeFunctionName` union, read from the TypeScript source. */
function declaredNames(): string[] {
  const source = readFileSync(join(root, 'src', 'tensor', 'native.ts'), 'utf8');
  const m = /export\s+type\s+NativeFunctionName\s*=([\s\S]*?);/.exec(source);
  assert.ok(m, 'NativeFunctionName union not found in src/tensor/native.ts');
  const body = m[1]!.replace(/\/\/.*$/gm, '').replace(/\/\*[\s\S]*?\*\//g, '');
  const names = [...body.matchAll(/'([^']+)'|"([^"]+)"/g)].map((x) => x[1] ?? x[2]!);
  // Nothing but quoted names separated by `|` may be in the union.
  const rest = body.replace(/'[^']+'|"[^"]+"/g, '').replace(/[|\s]/g, '');
  assert.equal(rest, '', `unexpected text in the NativeFunctionName union: ${rest}`);
  return names;
}

/** The names the built addon exports. */
function builtNames(): string[] {
  const require = createRequire(import.meta.url);
  const addon = require(process.env.PD_ADDON || join(root, 'build', 'Release', 'torch_addon.node')) as Record<string, unknown>; // PD_ADDON: as src/tensor/native.ts
  for (const [k, v] of Object.entries(addon)) assert.equal(typeof v, 'function', `addon export ${k} is not a function`);
  return Object.keys(addon);
}

/** The names registered with PD_FN in native/*.cc (a third view, from the C++ source). */
function registeredNames(): string[] {
  const dirPath = join(root, 'native');
  const names: string[] = [];
  for (const f of readdirSync(dirPath).filter((x) => x.endsWith('.cc'))) {
    const src = readFileSync(join(dirPath, f), 'utf8');
    // PD_FN(name, …) and the PD_BINARY / PD_UNARY shorthands that expand to it.
    // Lines continued with a backslash belong to the macros' own definitions.
    for (const m of src.matchAll(/^\s*PD_(?:FN|BINARY|UNARY)\((\w+)\s*,.*$/gm)) if (!m[0].trimEnd().endsWith('\\')) names.push(m[1]!);
  }
  return names;
}

const diff = (a: string[], b: string[]) => a.filter((x) => !b.includes(x)).sort();

describe('native binding table', () => {
  it('the TypeScript union has no duplicates and is not empty', () => {
    const names = declaredNames();
    assert.ok(names.length > 100, `only ${names.length} names parsed`);
    assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), []);
  });

  it('every declared name exists in the built addon, and every exported function is declared', () => {
    const declared = declaredNames();
    const built = builtNames();
    assert.deepEqual(diff(declared, built), [], 'declared in NativeFunctionName but missing from the addon (rebuild it?)');
    assert.deepEqual(diff(built, declared), [], 'exported by the addon but missing from NativeFunctionName');
  });

  it('the C++ sources register the same names (the addon is not stale)', () => {
    const registered = registeredNames();
    assert.deepEqual(registered.filter((n, i) => registered.indexOf(n) !== i), [], 'a name is registered twice');
    const built = builtNames();
    assert.deepEqual(diff(registered, built), [], 'registered in native/*.cc but not in the built addon: rebuild it');
    assert.deepEqual(diff(built, registered), [], 'in the built addon but no longer in native/*.cc: rebuild it');
  });

  it('the loaded `native` object is the addon', () => {
    for (const name of declaredNames()) assert.equal(typeof (native as Record<string, unknown>)[name], 'function', name);
  });
});
