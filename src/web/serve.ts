// What the sampling page needs, as a set of files: the HTML, its scripts
// (src/web compiled, plus the closed-form formulas they import), onnxruntime-
// web's module and WebAssembly files, the model and its description. `serve`
// either writes them to a folder (any static server can host it) or serves
// them itself on localhost.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { hostAllowed, isLoopbackHost, requestPath } from '../util/http-guard.js';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PAGE_HTML } from './page.js';
import type { ModelInfo } from './model-info.js';

/** URL path (no leading slash) → file on disk, or the content itself. */
export type PageFiles = Map<string, { file: string } | { content: string | Buffer }>;

const HERE = dirname(fileURLToPath(import.meta.url)); // dist/src/web

/** onnxruntime-web's browser build: its ES module and the WebAssembly (plain and WebGPU) it loads. */
function ortFiles(): string[] {
  let dir: string;
  try {
    dir = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-web')), '.');
  } catch {
    throw new Error('serve: the npm package onnxruntime-web is not installed (npm install onnxruntime-web)');
  }
  const dist = existsSync(join(dir, 'ort.min.mjs')) ? dir : join(dir, '..', 'dist');
  const files = readdirSync(dist).filter((f) => f === 'ort.min.mjs' || /^ort-wasm-simd-threaded(\.jsep)?\.(mjs|wasm)$/.test(f));
  if (!files.includes('ort.min.mjs')) throw new Error(`serve: ${dist} lacks ort.min.mjs (an unexpected onnxruntime-web layout)`);
  return files.map((f) => join(dist, f));
}

/** The page's files for a model file and its description. */
export function pageFiles(modelOnnx: string, info: ModelInfo): PageFiles {
  const files: PageFiles = new Map();
  files.set('index.html', { content: PAGE_HTML });
  files.set('model.onnx', { file: modelOnnx });
  files.set('model.json', { content: JSON.stringify(info, null, 2) + '\n' });
  for (const f of ['app.js', 'sampler.js', 'torch-generator.js']) files.set(`web/${f}`, { file: join(HERE, f) });
  files.set('diffusion/formulas.js', { file: join(HERE, '..', 'diffusion', 'formulas.js') });
  for (const f of ortFiles()) files.set(`web/ort/${f.split('/').pop()!}`, { file: f });
  for (const [path, entry] of files)
    if ('file' in entry && !existsSync(entry.file)) throw new Error(`serve: ${entry.file} (for /${path}) is missing; build the project first (npm run build)`);
  return files;
}

/** Writes the page into `dir` (a static site: open it through any web server, not as file://). */
export function writeBundle(dir: string, files: PageFiles): void {
  for (const [path, entry] of files) {
    const target = join(dir, path);
    mkdirSync(dirname(target), { recursive: true });
    if ('file' in entry) copyFileSync(entry.file, target);
    else writeFileSync(target, entry.content);
  }
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm',
  '.json': 'application/json', '.onnx': 'application/octet-stream',
};

/**
 * Serves the page on host:port (127.0.0.1 unless another host is asked
 * for). Cross-origin isolation headers let onnxruntime-web use threads.
 */
export function servePage(files: PageFiles, o: { host: string; port: number }): Promise<Server> {
  const server = createServer((req, res) => {
    if (!hostAllowed(o.host, req.headers.host)) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end(`this page answers only to ${isLoopbackHost(o.host) ? 'localhost' : o.host} (got Host: ${req.headers.host})\n`);
      return;
    }
    const decoded = requestPath(req.url);
    if (decoded === null) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('bad path\n');
      return;
    }
    const path = decoded.replace(/^\/+/, '') || 'index.html';
    const entry = files.get(path);
    if (!entry || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: /${path}\n`);
      return;
    }
    try {
      const body = 'file' in entry ? readFileSync(entry.file) : entry.content;
      res.writeHead(200, {
        'content-type': TYPES[extname(path)] ?? 'application/octet-stream',
        'content-length': Buffer.byteLength(body),
        'cross-origin-opener-policy': 'same-origin',
        'cross-origin-embedder-policy': 'require-corp',
        'cache-control': 'no-store',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(e as Error).message}\n`);
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new Error(e.code === 'EADDRINUSE' ? `serve: port ${o.port} on ${o.host} is in use (choose another --port, or 0 for any free one)` : `serve: ${e.message}`)),
    );
    server.listen(o.port, o.host, () => resolve(server));
  });
}

/** Bytes of a page's files (for the log line). */
export function pageBytes(files: PageFiles): number {
  let n = 0;
  for (const e of files.values()) n += 'file' in e ? statSync(e.file).size : Buffer.byteLength(e.content);
  return n;
}
