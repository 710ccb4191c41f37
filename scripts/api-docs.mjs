#!/usr/bin/env node
// Writes docs/api.md, the API reference, from the declarations tsc emits
// (dist/**/*.d.ts, so run `npx tsc -p .` first). TypeScript 7 has no
// JavaScript compiler API, so typedoc and api-extractor cannot run; the .d.ts
// files tsc writes are regular enough to read directly: top-level statements
// (`export declare function`, `export interface`, `export type`,
// `export declare class`, `export declare const`, re-exports) each with the
// JSDoc comment above it.
//
// The public entry points are the "types" of package.json's "exports"; every
// re-export is followed (`export * from`, `export { a as b } from`,
// `export * as ns from`, `import` + `export { a }`), and each exported
// declaration gets one section, under the module that declares it, with every
// name it is reached by.
//
//   node scripts/api-docs.mjs                 writes docs/api.md
//   node scripts/api-docs.mjs --out FILE      writes FILE instead
//   node scripts/api-docs.mjs --undocumented  lists the exports without a doc comment (exit 1 if any)
//
// The test (test/api-docs.test.ts) imports `buildApiDocs` and `checkLinks`.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

// ---- reading a .d.ts file ------------------------------------------------------------------------

/** Index just past the string or template literal that starts at `i`. */
function skipQuoted(text, i) {
  const quote = text[i];
  i++;
  while (i < text.length) {
    const c = text[i];
    if (c === '\\') i += 2;
    else if (c === quote) return i + 1;
    else if (quote === '`' && c === '$' && text[i + 1] === '{') i = skipBalanced(text, i + 1);
    else i++;
  }
  return i;
}

/** Index just past the comment that starts at `i` (`//` or `/*`). */
function skipComment(text, i) {
  if (text[i + 1] === '/') {
    const end = text.indexOf('\n', i);
    return end < 0 ? text.length : end;
  }
  const end = text.indexOf('*/', i + 2);
  return end < 0 ? text.length : end + 2;
}

/** Index just past the bracket group that opens at `i`. */
function skipBalanced(text, i) {
  let depth = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"' || c === "'" || c === '`') { i = skipQuoted(text, i); continue; }
    if (c === '/' && (text[i + 1] === '/' || text[i + 1] === '*')) { i = skipComment(text, i); continue; }
    if (c === '{' || c === '(' || c === '[') depth++;
    else if (c === '}' || c === ')' || c === ']') {
      depth--;
      if (depth === 0) return i + 1;
    }
    i++;
  }
  return i;
}

const BODY_KIND = /^(?:export\s+)?(?:declare\s+)?(?:default\s+)?(?:abstract\s+)?(?:interface|class|namespace|module|enum|const\s+enum|global)\b/;

/**
 * The statements of a declaration file (or of a class or interface body: `members` true), each with the
 * JSDoc comment just above it (null when none). A statement ends at a `;` outside brackets, or, for a
 * declaration with a body (class, interface, namespace, enum), at the `}` that closes it at the end of a line.
 */
function splitStatements(text, members = false) {
  const out = [];
  let doc = null;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (/\s/.test(c) || (members && c === ',')) { i++; continue; }
    if (c === '/' && text[i + 1] === '*') {
      const end = skipComment(text, i);
      if (text[i + 2] === '*' && text[i + 3] !== '/') doc = text.slice(i, end);
      i = end;
      continue;
    }
    if (c === '/' && text[i + 1] === '/') { i = skipComment(text, i); continue; }
    const start = i;
    const body = !members && BODY_KIND.test(text.slice(start, start + 120));
    let depth = 0;
    let end = text.length;
    while (i < text.length) {
      const ch = text[i];
      if (ch === '"' || ch === "'" || ch === '`') { i = skipQuoted(text, i); continue; }
      if (ch === '/' && (text[i + 1] === '/' || text[i + 1] === '*')) { i = skipComment(text, i); continue; }
      if (ch === '{' || ch === '(' || ch === '[') depth++;
      else if (ch === '}' || ch === ')' || ch === ']') {
        depth--;
        if (ch === '}' && depth === 0 && body) {
          const eol = text.indexOf('\n', i);
          if (!text.slice(i + 1, eol < 0 ? text.length : eol).trim()) { end = i + 1; i++; break; }
        }
      } else if (depth === 0 && (ch === ';' || (members && ch === ','))) { end = i + 1; i++; break; }
      i++;
    }
    out.push({ doc, text: text.slice(start, Math.min(end, text.length)).trim() });
    doc = null;
  }
  return out;
}

/** `a, b as c, type d` → [{ name: 'a', as: 'a' }, { name: 'b', as: 'c' }, { name: 'd', as: 'd' }]. */
function parseSpecifiers(list) {
  return list.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    const m = /^(?:type\s+)?([\w$]+)(?:\s+as\s+([\w$]+))?$/.exec(s);
    if (!m) throw new Error(`api-docs: cannot read the export specifier '${s}'`);
    return { name: m[1], as: m[2] ?? m[1] };
  });
}

const DECLARATION = /^(export\s+)?(?:declare\s+)?(?:default\s+)?(?:abstract\s+)?(function|class|interface|type|const|let|var|enum|const\s+enum|namespace|module)\s+([\w$]+)/;

/** Everything a declaration file says: its declarations by name, imports, and exports. */
function readModule(file) {
  const text = readFileSync(file, 'utf8');
  // `exports` in the order the file writes them: { star, from } | { as, from, name } | { as, from, namespace } | { as, local }.
  const mod = { file, declarations: new Map(), imports: new Map(), namespaceImports: new Map(), exports: [] };
  for (const st of splitStatements(text)) {
    const t = st.text.replace(/\s+/g, ' ');
    let m;
    if ((m = /^import (?:type )?\{([^}]*)\} from ['"]([^'"]+)['"]/.exec(t))) {
      for (const s of parseSpecifiers(m[1])) mod.imports.set(s.as, { from: m[2], name: s.name });
    } else if ((m = /^import (?:type )?\* as ([\w$]+) from ['"]([^'"]+)['"]/.exec(t))) {
      mod.namespaceImports.set(m[1], m[2]);
    } else if (/^import /.test(t)) {
      // A default or side-effect import: nothing a re-export here can name.
    } else if ((m = /^export \* as ([\w$]+) from ['"]([^'"]+)['"]/.exec(t))) {
      mod.exports.push({ as: m[1], from: m[2], namespace: true });
    } else if ((m = /^export \* from ['"]([^'"]+)['"]/.exec(t))) {
      mod.exports.push({ star: true, from: m[1] });
    } else if ((m = /^export (?:type )?\{([^}]*)\} from ['"]([^'"]+)['"]/.exec(t))) {
      for (const s of parseSpecifiers(m[1])) mod.exports.push({ as: s.as, from: m[2], name: s.name });
    } else if ((m = /^export (?:type )?\{([^}]*)\}/.exec(t))) {
      for (const s of parseSpecifiers(m[1])) mod.exports.push({ as: s.as, local: s.name });
    } else if ((m = DECLARATION.exec(t))) {
      const [, exported, kind, name] = m;
      const list = mod.declarations.get(name) ?? [];
      list.push({ kind: kind.replace(/\s+/g, ' '), doc: st.doc, text: st.text });
      mod.declarations.set(name, list);
      if (exported && list.length === 1) mod.exports.push({ as: name, local: name });
    } else if (/^export default /.test(t)) {
      mod.declarations.set('default', [{ kind: 'default', doc: st.doc, text: st.text }]);
      mod.exports.push({ as: 'default', local: 'default' });
    } else if (/^export (?:declare )?(?:const|let|var) /.test(t) || /^export =/.test(t)) {
      throw new Error(`api-docs: ${relative(ROOT, file)}: cannot read '${t.slice(0, 80)}'`);
    }
  }
  return mod;
}

/** The .d.ts a relative specifier names (`./x.js` → x.d.ts, or x/index.d.ts); null for a package. */
function resolveSpecifier(fromFile, spec) {
  if (!spec.startsWith('.')) return null;
  const base = resolve(dirname(fromFile), spec).replace(/\.(m|c)?js$/, '');
  for (const f of [`${base}.d.ts`, `${base}.d.mts`, join(base, 'index.d.ts')]) if (existsSync(f)) return f;
  throw new Error(`api-docs: ${relative(ROOT, fromFile)}: '${spec}' has no declaration file (is dist/ built?)`);
}

class Program {
  #modules = new Map();
  #exports = new Map();

  module(file) {
    let m = this.#modules.get(file);
    if (!m) this.#modules.set(file, (m = readModule(file)));
    return m;
  }

  /** A name as a module sees it: a local declaration, an import followed to its declaration, or a namespace. */
  #resolveLocal(mod, name, seen) {
    if (mod.declarations.has(name)) return { kind: 'declaration', file: mod.file, name };
    const imported = mod.imports.get(name);
    if (imported) {
      const target = resolveSpecifier(mod.file, imported.from);
      return target ? this.resolveExport(target, imported.name, seen) : { kind: 'external', from: imported.from, name: imported.name };
    }
    const ns = mod.namespaceImports.get(name);
    if (ns) {
      const target = resolveSpecifier(mod.file, ns);
      return target ? { kind: 'namespace', file: target } : { kind: 'external', from: ns, name: '*' };
    }
    throw new Error(`api-docs: ${relative(ROOT, mod.file)} exports '${name}', which it neither declares nor imports`);
  }

  /** What `name` exported by `file` is, followed through every re-export. */
  resolveExport(file, name, seen = new Set()) {
    const key = `${file}#${name}`;
    if (seen.has(key)) throw new Error(`api-docs: a re-export cycle at ${relative(ROOT, file)} '${name}'`);
    seen.add(key);
    const target = this.exportsOf(file).get(name);
    if (!target) throw new Error(`api-docs: ${relative(ROOT, file)} does not export '${name}'`);
    return target(seen);
  }

  /** The module's exports: name → a function resolving it (lazily, so cycles through `export *` are fine). */
  exportsOf(file) {
    let map = this.#exports.get(file);
    if (map) return map;
    map = new Map();
    this.#exports.set(file, map);
    const mod = this.module(file);
    // In the file's order; an explicit export wins over `export *`, as in TypeScript, and `export *` never
    // re-exports `default`.
    const explicit = new Set(mod.exports.filter((e) => !e.star).map((e) => e.as));
    for (const e of mod.exports) {
      const target = e.from === undefined ? null : resolveSpecifier(file, e.from);
      if (e.star) {
        if (!target) continue;
        for (const name of this.exportsOf(target).keys())
          if (name !== 'default' && !explicit.has(name) && !map.has(name)) map.set(name, (seen) => this.resolveExport(target, name, seen));
      } else if (e.namespace) map.set(e.as, () => (target ? { kind: 'namespace', file: target } : { kind: 'external', from: e.from, name: '*' }));
      else if (e.local !== undefined) map.set(e.as, (seen) => this.#resolveLocal(mod, e.local, seen));
      else map.set(e.as, (seen) => (target ? this.resolveExport(target, e.name, seen) : { kind: 'external', from: e.from, name: e.name }));
    }
    return map;
  }
}

// ---- doc comments ------------------------------------------------------------------------------

/** A JSDoc comment's text and tags: `{ text, params: [{ name, text }], returns, tags: [{ tag, text }] }`. */
export function parseDoc(raw) {
  if (!raw) return null;
  const lines = raw
    .replace(/^\/\*\*/, '')
    .replace(/\*\/$/, '')
    .split('\n')
    .map((l) => l.replace(/^\s*\* ?/, '').replace(/\s+$/, ''));
  const doc = { text: '', params: [], returns: null, tags: [], internal: false };
  let current = null;
  const body = [];
  for (const line of lines) {
    const m = /^@(\w+)\s*(.*)$/.exec(line.trim());
    if (m) {
      current = { tag: m[1], lines: [m[2]] };
      doc.tags.push(current);
    } else if (current) current.lines.push(line);
    else body.push(line);
  }
  doc.text = body.join('\n').trim();
  const tags = [];
  for (const t of doc.tags) {
    const text = t.lines.join('\n').trim();
    if (t.tag === 'param') {
      const m = /^(?:\{[^}]*\}\s*)?\[?([\w$.]+)[^\s\]]*\]?\s*(?:-\s*)?([\s\S]*)$/.exec(text);
      doc.params.push({ name: m ? m[1] : text, text: m ? m[2] : '' });
    } else if (t.tag === 'returns' || t.tag === 'return') doc.returns = text.replace(/^\{[^}]*\}\s*/, '');
    else if (t.tag === 'internal') doc.internal = true;
    else tags.push({ tag: t.tag, text });
  }
  doc.tags = tags;
  return doc;
}

/** A doc comment that says something (a bare `@internal` or an empty comment does not). */
function hasText(doc) {
  return !!doc && (doc.text.length > 0 || doc.params.length > 0 || doc.returns !== null);
}

/** Markdown from doc text: `{@link X}` as code; a `<` that would open an HTML tag escaped outside code spans. */
function markdown(text) {
  return text
    .replace(/\{@link(?:code|plain)?\s+([^}|\s]+)(?:[\s|]+([^}]*))?\}/g, (_, target, label) => (label ? `${label} (\`${target}\`)` : `\`${target}\``))
    .split(/(`[^`]*`)/)
    .map((part, k) => (k % 2 ? part : part.replace(/<(?=[A-Za-z/!?])/g, '&lt;')))
    .join('');
}

/** Doc text on one line (a member's list item): paragraphs joined. */
function oneLine(text) {
  return markdown(text.replace(/\s*\n\s*/g, ' '));
}

// ---- rendering ---------------------------------------------------------------------------------

/** A declaration's text without `export` and `declare`. */
function cleanDeclaration(text) {
  return text
    .replace(/^export\s+/, '')
    .replace(/^declare\s+/, '')
    // tsc sometimes leaves a member's doc comment at the end of the line before it: put it above its member.
    .replace(/;[ \t]+(\/\*\*[^\n]*?\*\/)[ \t]*\n([ \t]*)/g, ';\n$2$1\n$2');
}

/** Strips the JSDoc comments out of a declaration (they are rendered as text instead). */
function withoutComments(text) {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"' || c === "'" || c === '`') { const e = skipQuoted(text, i); out += text.slice(i, e); i = e; continue; }
    if (c === '/' && (text[i + 1] === '*' || text[i + 1] === '/')) {
      i = skipComment(text, i);
      // The line the comment stood on goes with it.
      out = out.replace(/[ \t]*$/, '');
      if (text[i] === '\n' && (out.endsWith('\n') || out === '')) i++;
      continue;
    }
    out += c;
    i++;
  }
  return out;
}

/** A class or interface: its head (`class X extends Y`) and its members, each with its doc comment. */
function splitBody(text) {
  const open = findBodyOpen(text);
  const head = cleanDeclaration(text.slice(0, open)).replace(/\s+/g, ' ').trim();
  const inner = text.slice(open + 1, text.lastIndexOf('}'));
  return { head, members: splitStatements(inner, true) };
}

/** The `{` that opens a class or interface body (not one inside its type parameters or heritage). */
function findBodyOpen(text) {
  let i = 0;
  let angle = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"' || c === "'" || c === '`') { i = skipQuoted(text, i); continue; }
    if (c === '<') angle++;
    else if (c === '>' && text[i - 1] !== '=') angle--;
    else if (c === '(' || c === '[' || (c === '{' && angle > 0)) { i = skipBalanced(text, i); continue; }
    else if (c === '{') return i;
    i++;
  }
  throw new Error(`api-docs: no body in '${text.slice(0, 80)}'`);
}

/** Members a reader of the API may use: not private, not `#private`, not marked @internal. */
function publicMembers(members) {
  return members.filter((m) => {
    const t = m.text.replace(/\s+/g, ' ');
    if (/^(?:private\b|#)/.test(t) || /^(?:static\s+|readonly\s+|protected\s+)*private\b/.test(t)) return false;
    return !parseDoc(m.doc)?.internal;
  });
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens, repeats numbered. */
export function slugger() {
  const seen = new Map();
  return (heading) => {
    const base = heading
      .replace(/<[^>]*>/g, '')
      .toLowerCase()
      .trim()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return n ? `${base}-${n}` : base;
  };
}

function fence(code) {
  return ['```ts', code.trimEnd(), '```'];
}

function renderDocBlock(doc) {
  const out = [];
  if (!doc) return out;
  if (doc.text) out.push(markdown(doc.text), '');
  if (doc.params.length) {
    out.push('Parameters:', '');
    for (const p of doc.params) out.push(`- \`${p.name}\`${p.text ? ` — ${oneLine(p.text)}` : ''}`);
    out.push('');
  }
  if (doc.returns) out.push(`Returns: ${oneLine(doc.returns)}`, '');
  for (const t of doc.tags) {
    if (t.tag === 'example') out.push('Example:', '', ...(t.text.includes('```') ? [t.text] : fence(t.text)), '');
    else out.push(`*@${t.tag}*${t.text ? ` ${oneLine(t.text)}` : ''}`, '');
  }
  return out;
}

function renderItem(item, slug) {
  const { declarations, names } = item;
  const kinds = [...new Set(declarations.map((d) => d.kind))];
  const out = [`#### ${item.name}`, ''];
  item.anchor = slug(item.name);
  const source = relative(ROOT, item.file).replace(/^dist\//, '').replace(/\.d\.ts$/, '.ts');
  const where = existsSync(join(ROOT, source)) ? ` · [${source}](../${source})` : '';
  out.push(`*${kinds.join(', ')}* · ${names.join(', ')}${where}`, '');
  const documented = declarations.find((d) => hasText(parseDoc(d.doc)));
  for (const d of declarations) {
    if (d.kind === 'class' || d.kind === 'interface') {
      const { head, members } = splitBody(d.text);
      out.push(...fence(head), '');
      out.push(...renderDocBlock(parseDoc(d.doc)));
      const shown = publicMembers(members);
      if (shown.length) {
        out.push(d.kind === 'class' ? 'Members:' : 'Properties:', '');
        for (const m of shown) {
          const sig = withoutComments(m.text).replace(/\s+/g, ' ').replace(/;$/, '').trim();
          const mdoc = parseDoc(m.doc);
          let line = `- \`${sig.replace(/`/g, 'ˋ')}\``;
          if (mdoc?.text) line += ` — ${oneLine(mdoc.text)}`;
          const extra = [...mdoc?.params.map((p) => `\`${p.name}\`: ${oneLine(p.text)}`) ?? [], ...(mdoc?.returns ? [`returns ${oneLine(mdoc.returns)}`] : [])];
          if (extra.length) line += ` (${extra.join('; ')})`;
          out.push(line);
        }
        out.push('');
      }
    }
  }
  const others = declarations.filter((d) => d.kind !== 'class' && d.kind !== 'interface');
  if (others.length) {
    // Functions show every overload in one block; a type keeps its members' comments, which carry their units.
    out.push(...fence(others.map((d) => (d.kind === 'function' ? withoutComments(cleanDeclaration(d.text)) : cleanDeclaration(d.text))).join('\n')), '');
    const doc = parseDoc((others.find((d) => hasText(parseDoc(d.doc))) ?? others[0]).doc);
    if (!declarations.some((d) => (d.kind === 'class' || d.kind === 'interface') && d.doc)) out.push(...renderDocBlock(doc));
  }
  if (!documented) out.push('*(no doc comment)*', '');
  return out;
}

/** The header comment of the module's source file (its `//` lines), as a paragraph. */
function moduleSummary(dts) {
  const src = join(ROOT, relative(ROOT, dts).replace(/^dist\//, '').replace(/\.d\.ts$/, '.ts'));
  if (!existsSync(src)) return null;
  const lines = [];
  for (const line of readFileSync(src, 'utf8').split('\n')) {
    const m = /^\/\/ ?(.*)$/.exec(line);
    if (!m) break;
    lines.push(m[1]);
  }
  const paragraphs = lines.join('\n').split(/\n\s*\n/).map((p) => p.trim().replace(/\s*\n\s*/g, ' ')).filter(Boolean);
  return paragraphs.length ? markdown(paragraphs.join('\n\n')) : null;
}

/**
 * The reference as Markdown, and the exports without a doc comment (`undocumented`: each with its
 * declaring source file and the names it is reached by).
 */
export function buildApiDocs() {
  const root = ROOT;
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const entries = Object.entries(pkg.exports ?? {})
    .filter(([, v]) => typeof v === 'object' && v.types)
    .map(([key, v]) => ({ specifier: key === '.' ? pkg.name : `${pkg.name}/${key.replace(/^\.\//, '')}`, file: join(root, v.types) }));
  const program = new Program();
  const items = new Map(); // file#name → item
  const sections = entries.map((e) => ({ ...e, modules: new Map() }));
  sections.forEach((section) => {
    const visit = (file, prefix, seenNamespaces) => {
      for (const name of program.exportsOf(file).keys()) {
        const target = program.resolveExport(file, name);
        const access = `${prefix}${name}`;
        if (target.kind === 'namespace') {
          if (!seenNamespaces.has(target.file)) visit(target.file, `${access}.`, new Set([...seenNamespaces, target.file]));
          continue;
        }
        if (target.kind === 'external') continue;
        const key = `${target.file}#${target.name}`;
        let item = items.get(key);
        const label = prefix ? `\`${access}\` from \`${section.specifier}\`` : `\`import { ${name} } from '${section.specifier}'\``;
        if (item) {
          if (!item.names.includes(label)) item.names.push(label);
          continue;
        }
        item = { name: prefix ? access : name, declared: target.name, file: target.file, declarations: program.module(target.file).declarations.get(target.name), names: [label], section };
        items.set(key, item);
        const list = section.modules.get(target.file) ?? [];
        list.push(item);
        section.modules.set(target.file, list);
      }
    };
    visit(section.file, '', new Set([section.file]));
  });
  // Within a module, declarations in the order the module declares them.
  for (const s of sections)
    for (const [file, list] of s.modules) {
      const order = [...program.module(file).declarations.keys()];
      list.sort((a, b) => order.indexOf(a.declared) - order.indexOf(b.declared));
    }

  const slug = slugger();
  const body = [];
  const toc = [];
  slug('API reference');
  slug('Contents');
  for (const s of sections) {
    const heading = `\`${s.specifier}\``;
    const anchor = slug(heading);
    toc.push(`- [${s.specifier}](#${anchor})`);
    body.push(`## ${heading}`, '');
    for (const [file, list] of s.modules) {
      const source = relative(root, file).replace(/^dist\//, '').replace(/\.d\.ts$/, '.ts');
      const mheading = source;
      const manchor = slug(mheading);
      body.push(`### ${mheading}`, '');
      const summary = moduleSummary(file);
      if (summary) body.push(summary, '');
      const rendered = list.map((item) => renderItem(item, slug));
      toc.push(`  - [${source}](#${manchor}): ${list.map((item) => `[${item.name}](#${item.anchor})`).join(', ')}`);
      for (const r of rendered) body.push(...r);
    }
  }
  const markdownText = [
    '# API reference',
    '',
    '<!-- Generated by scripts/api-docs.mjs from the declarations tsc emits; do not edit. Regenerate with `npm run docs:api`. -->',
    '',
    `Every export of the package's entry points (${sections.map((s) => `\`${s.specifier}\``).join(', ')}), ` +
      'grouped by the module that declares it, with its signature and doc comment. ' +
      'Names under a namespace (`networks.`, `diffusion.`, `data.`, `metrics.`, `distributed.`, `F.`) are reached through it: ' +
      "`import { diffusion } from 'patch-diffusion'; diffusion.patchLoss(…)`.",
    '',
    '## Contents',
    '',
    ...toc,
    '',
    ...body,
  ].join('\n').replace(/\n{3,}/g, '\n\n');
  const undocumented = [...items.values()]
    .filter((item) => !(item.declarations ?? []).some((d) => hasText(parseDoc(d.doc))))
    .map((item) => ({ name: item.name, source: relative(root, item.file).replace(/^dist\//, '').replace(/\.d\.ts$/, '.ts'), names: item.names }));
  return { markdown: markdownText.trimEnd() + '\n', undocumented, count: items.size };
}

// ---- links -------------------------------------------------------------------------------------

/** The anchors a Markdown file offers: its headings' slugs and explicit `id`/`name` attributes. */
function anchorsOf(file) {
  const slug = slugger();
  const anchors = new Set();
  let inFence = false;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) inFence = !inFence;
    if (inFence) continue;
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (h) anchors.add(slug(h[1].replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')));
    for (const m of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(m[1]);
  }
  return anchors;
}

/**
 * Every relative link and image in the given Markdown files that does not resolve: a missing file, or an
 * anchor no heading of the target makes. Returns `{ file, line, target, why }` for each.
 */
export function checkLinks(files) {
  const root = ROOT;
  const broken = [];
  const anchorCache = new Map();
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    let inFence = false;
    text.split('\n').forEach((line, k) => {
      if (/^\s*(```|~~~)/.test(line)) inFence = !inFence;
      if (inFence) return;
      const code = line.replace(/`[^`]*`/g, '');
      for (const m of code.matchAll(/!?\[(?:[^\][]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
        const target = m[1];
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, https:, mailto:
        const [pathPart, anchor] = target.split('#');
        const dest = pathPart ? resolve(dirname(file), decodeURIComponent(pathPart)) : file;
        const where = { file: relative(root, file), line: k + 1, target };
        if (!existsSync(dest)) { broken.push({ ...where, why: 'no such file' }); continue; }
        if (anchor !== undefined && dest.endsWith('.md')) {
          if (!anchorCache.has(dest)) anchorCache.set(dest, anchorsOf(dest));
          if (!anchorCache.get(dest).has(anchor)) broken.push({ ...where, why: `no heading makes #${anchor}` });
        }
      }
    });
  }
  return broken;
}

// ---- command line ------------------------------------------------------------------------------

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const { markdown: text, undocumented, count } = buildApiDocs();
  if (args.includes('--undocumented')) {
    for (const u of undocumented) console.log(`${u.source}\t${u.names.join(', ')}`);
    console.log(`${undocumented.length} of ${count} exports have no doc comment`);
    process.exit(undocumented.length ? 1 : 0);
  }
  const at = args.indexOf('--out');
  const out = at >= 0 ? resolve(args[at + 1]) : join(ROOT, 'docs', 'api.md');
  writeFileSync(out, text);
  console.log(`wrote ${relative(process.cwd(), out)}: ${count} exports, ${undocumented.length} without a doc comment`);
}
