// docs/api.md is generated from the declarations tsc emits (scripts/api-docs.mjs): it must match what the
// current dist/ gives, every public export must carry a doc comment, and every relative link in the README
// and docs/ must lead somewhere. Needs only `npx tsc -p .` (no engine).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Undocumented {
  name: string;
  source: string;
  names: string[];
}
interface BrokenLink {
  file: string;
  line: number;
  target: string;
  why: string;
}
interface ApiDocsScript {
  buildApiDocs(): { markdown: string; undocumented: Undocumented[]; count: number };
  checkLinks(files: string[]): BrokenLink[];
}
const script = (await import(pathToFileURL(join(ROOT, 'scripts/api-docs.mjs')).href)) as ApiDocsScript;
const built = script.buildApiDocs();

test('docs/api.md is what scripts/api-docs.mjs makes of the current declarations (else: npm run docs:api)', () => {
  const onDisk = readFileSync(join(ROOT, 'docs/api.md'), 'utf8');
  if (onDisk === built.markdown) return;
  const a = onDisk.split('\n');
  const b = built.markdown.split('\n');
  let k = 0;
  while (k < a.length && k < b.length && a[k] === b[k]) k++;
  assert.fail(`docs/api.md is stale: from line ${k + 1} it has\n  ${a[k] ?? '(end)'}\nwhere the declarations give\n  ${b[k] ?? '(end)'}\nRun \`npx tsc -p . && npm run docs:api\`.`);
});

test('every public export has a doc comment', () => {
  assert.ok(built.count > 300, `only ${built.count} exports found: the entry points were not followed`);
  assert.deepEqual(built.undocumented.map((u) => `${u.source}: ${u.names.join(', ')}`), [], 'exports without a doc comment');
});

test('the reference covers the library, the browser sampler and the CLI entry points', () => {
  for (const heading of ['## `patch-diffusion`', '## `patch-diffusion/web`', '## `patch-diffusion/cli`', '#### train', '#### DiffusionModel', '#### webSample', '#### runCli'])
    assert.ok(built.markdown.includes(`\n${heading}\n`), `no '${heading}' section`);
  // Interface members keep their own doc comments (their units are there).
  assert.match(built.markdown, /- `seeds: readonly number\[\]` — One image per seed/);
});

test('every relative link and image in README.md, RESULTS.md and docs/ resolves (files and heading anchors)', () => {
  const markdownFiles = (dir: string): string[] =>
    readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return name === 'runs' ? [] : markdownFiles(path);
      return name.endsWith('.md') ? [path] : [];
    });
  const files = [join(ROOT, 'README.md'), join(ROOT, 'RESULTS.md'), ...markdownFiles(join(ROOT, 'docs'))];
  const broken = script.checkLinks(files);
  assert.deepEqual(broken.map((b) => `${b.file}:${b.line}: ${b.target} (${b.why})`), []);
});

test("the README's library example is examples/quickstart.ts (without its opening comment)", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n## As a library'));
  const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block, "no ```ts block under '## As a library'");
  const example = readFileSync(join(ROOT, 'examples/quickstart.ts'), 'utf8').replace(/^(\/\/.*\n)+/, '');
  assert.equal(block, example);
});
