// The training dashboard: a small HTTP server over one run directory. It
// reads only what the run writes anyway (stats.jsonl, the samples-*.png
// grids, training_options.json, progress.json) and pushes what is new to the
// page by server-sent events, so the same server shows a run that is going on
// (`train --dashboard`, in a worker thread: src/dashboard/worker.ts) and a
// finished one (`patch-diffusion dashboard <run>`).
//
//   GET /                 the page (src/dashboard/page/: plain HTML, JS and SVG, no build step)
//   GET /api/run          everything so far, as JSON
//   GET /api/events       server-sent events: `init` (everything), then `stats` (new
//                         stats.jsonl lines), `grids` (the grid list, when a grid is
//                         written or rewritten) and `status` (progress.json, live/ended)
//   GET /files/<name>     a sample grid or loss.png of the run (nothing else)
//
// Bound to 127.0.0.1 unless asked otherwise; when bound to a loopback
// address it also refuses requests whose Host header names another host
// (a web page elsewhere cannot reach it through DNS rebinding).
import { hostAllowed, isLoopbackHost, requestPath } from '../util/http-guard.js';
import { closeSync, existsSync, lstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The first port tried when none is given (TensorBoard has 6006); the next few are tried when it is taken. */
export const DEFAULT_DASHBOARD_PORT = 6060;
const PORT_TRIES = 10;

const WEB_DIR = fileURLToPath(new URL('../../../src/dashboard/page/', import.meta.url));
const STATIC: Record<string, string> = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/app.js': 'app.js',
  '/style.css': 'style.css',
};
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
};
const GRID = /^samples-\d+\.png$/;

export interface DashboardOptions {
  runDir: string;
  /** undefined: DEFAULT_DASHBOARD_PORT or one of the next few that is free; 0: any free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** True while a training process in this process writes the run (the page shows "live"). */
  live?: boolean;
  /** The options of the training in this process (a resumed run's --duration may differ from training_options.json). */
  options?: Record<string, unknown>;
  /** How often the run directory is looked at while a page is open (ms). */
  pollMs?: number;
  /** Where errors go (they are never thrown at the caller once the server is up). */
  onError?: (message: string) => void;
}

export interface GridFile {
  name: string;
  /** Changes when the file is rewritten (tiny runs rewrite samples-000000.png every snapshot). */
  version: string;
  kimg: number;
}

export interface RunStatus {
  live: boolean;
  /** progress.json, written when a training process ends. */
  progress: { curNimg: number; finished: boolean; lastSnapshot: string | null } | null;
}

export interface DashboardServer {
  url: string;
  port: number;
  host: string;
  /** Tells the pages the run ended (training stopped in this process), then keeps serving. */
  setLive(live: boolean): void;
  /** Looks at the run directory now and sends what is new. */
  refresh(): void;
  close(): Promise<void>;
}

/** What the page needs of a run directory, read incrementally: stats.jsonl from where it was last read. */
export class RunWatcher {
  readonly stats: Record<string, unknown>[] = [];
  grids: GridFile[] = [];
  progress: RunStatus['progress'] = null;
  options: Record<string, unknown> | null = null;
  private offset = 0;
  private partial = '';
  private gridKey = '';
  private progressKey = '';

  constructor(
    readonly runDir: string,
    private readonly onError: (message: string) => void,
  ) {}

  /** Reads what changed; returns which parts did. `reset` means stats.jsonl was replaced (send everything again). */
  update(): { reset: boolean; newStats: Record<string, unknown>[]; grids: boolean; progress: boolean } {
    const result = { reset: false, newStats: [] as Record<string, unknown>[], grids: false, progress: false };
    if (this.options === null) this.options = this.readJson('training_options.json');
    // stats.jsonl: only the bytes appended since the last look, whole lines only.
    const statsPath = join(this.runDir, 'stats.jsonl');
    try {
      const size = existsSync(statsPath) ? statSync(statsPath).size : 0;
      if (size < this.offset) {
        this.offset = 0;
        this.partial = '';
        this.stats.length = 0;
        result.reset = true;
      }
      if (size > this.offset) {
        const fd = openSync(statsPath, 'r');
        try {
          const buf = Buffer.alloc(size - this.offset);
          let got = 0;
          while (got < buf.length) {
            const n = readSync(fd, buf, got, buf.length - got, this.offset + got);
            if (n === 0) break;
            got += n;
          }
          this.offset += got;
          const text = this.partial + buf.subarray(0, got).toString('utf8');
          const lines = text.split('\n');
          this.partial = lines.pop() ?? '';
          for (const line of lines) {
            if (!line.trim()) continue;
            try {
              const entry = JSON.parse(line) as Record<string, unknown>;
              this.stats.push(entry);
              result.newStats.push(entry);
            } catch {
              this.onError(`stats.jsonl: skipped a line that is not JSON: ${line.slice(0, 80)}`);
            }
          }
        } finally {
          closeSync(fd);
        }
      }
    } catch (err) {
      this.onError(`cannot read ${statsPath}: ${(err as Error).message}`);
    }
    // Sample grids: names and versions (size and time of the last write).
    try {
      const grids: GridFile[] = [];
      for (const name of readdirSync(this.runDir).filter((f) => GRID.test(f)).sort()) {
        try {
          const st = statSync(join(this.runDir, name));
          grids.push({ name, version: `${Math.round(st.mtimeMs)}-${st.size}`, kimg: Number(/\d+/.exec(name)![0]) });
        } catch {
          /* removed between the listing and the stat */
        }
      }
      const key = grids.map((g) => `${g.name}@${g.version}`).join(',');
      if (key !== this.gridKey) {
        this.gridKey = key;
        this.grids = grids;
        result.grids = true;
      }
    } catch (err) {
      this.onError(`cannot list ${this.runDir}: ${(err as Error).message}`);
    }
    const progress = this.readJson('progress.json') as RunStatus['progress'];
    const progressKey = JSON.stringify(progress);
    if (progressKey !== this.progressKey) {
      this.progressKey = progressKey;
      this.progress = progress;
      result.progress = true;
    }
    return result;
  }

  private readJson(name: string): Record<string, unknown> | null {
    const path = join(this.runDir, name);
    if (!existsSync(path)) return null;
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    } catch {
      return null; // being replaced (written atomically, so only a moment)
    }
  }
}

/** Is this a run directory the dashboard can show? Throws a message naming what is missing. */
export function checkRunDir(runDir: string): string {
  const dir = resolve(runDir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`${runDir}: no such run directory`);
  if (!['training_options.json', 'stats.jsonl', 'log.txt'].some((f) => existsSync(join(dir, f))))
    throw new Error(`${runDir} is not a run directory (no training_options.json, stats.jsonl or log.txt); give the folder that \`train\` printed as "Run directory"`);
  return dir;
}

export async function startDashboard(o: DashboardOptions): Promise<DashboardServer> {
  if (!existsSync(join(WEB_DIR, 'index.html'))) throw new Error(`the dashboard's page is missing (${WEB_DIR}index.html): reinstall patch-diffusion`);
  const runDir = resolve(o.runDir);
  const host = o.host ?? '127.0.0.1';
  const onError = o.onError ?? ((m: string) => process.stderr.write(`dashboard: ${m}\n`));
  const watcher = new RunWatcher(runDir, onError);
  const clients = new Set<ServerResponse>();
  let live = o.live ?? false;
  watcher.update();

  const send = (res: ServerResponse, event: string, data: unknown) => {
    try {
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    } catch {
      clients.delete(res);
    }
  };
  const status = (): RunStatus => ({ live, progress: watcher.progress });
  const everything = () => ({
    name: basename(runDir),
    dir: runDir,
    options: o.options ?? watcher.options,
    stats: watcher.stats,
    grids: watcher.grids,
    status: status(),
  });
  const refresh = () => {
    try {
      const changed = watcher.update();
      if (!clients.size) return;
      for (const res of clients) {
        if (changed.reset) send(res, 'init', everything());
        else {
          if (changed.newStats.length) send(res, 'stats', changed.newStats);
          if (changed.grids) send(res, 'grids', watcher.grids);
          if (changed.progress) send(res, 'status', status());
        }
      }
    } catch (err) {
      onError(`refresh: ${(err as Error).message}`);
    }
  };
  // Looks at the directory only while a page is open; unref'd, so it never keeps a process alive.
  const timer = setInterval(() => clients.size && refresh(), o.pollMs ?? 500);
  timer.unref();

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    if (!hostAllowed(host, req.headers.host))
      return reply(res, 403, 'text/plain', `this dashboard answers only to ${isLoopbackHost(host) ? 'localhost' : host} (got Host: ${req.headers.host})`);
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'text/plain', 'only GET');
    const path = requestPath(req.url);
    if (path === null) return reply(res, 400, 'text/plain', 'bad path');
    const file = STATIC[path];
    if (file) return reply(res, 200, TYPES[file.slice(file.lastIndexOf('.'))]!, readFileSync(join(WEB_DIR, file)));
    if (path === '/api/run') return reply(res, 200, 'application/json', JSON.stringify(everything()));
    if (path === '/api/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      res.write('retry: 2000\n\n');
      // What changed since the last look goes to the pages already open first (update() consumes it).
      refresh();
      clients.add(res);
      send(res, 'init', everything());
      req.on('close', () => clients.delete(res));
      return;
    }
    if (path.startsWith('/files/')) {
      const name = path.slice('/files/'.length);
      // A regular file of the run only: a link named like a grid could point anywhere (/etc/passwd).
      if ((GRID.test(name) || name === 'loss.png') && lstatSync(join(runDir, name), { throwIfNoEntry: false })?.isFile())
        return reply(res, 200, 'image/png', readFileSync(join(runDir, name)), { 'cache-control': 'no-cache' });
      return reply(res, 404, 'text/plain', `no such file in the run: ${name}`);
    }
    reply(res, 404, 'text/plain', 'not found');
  };
  const server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch (err) {
      onError(`${req.method} ${req.url}: ${(err as Error).message}`);
      if (!res.headersSent) reply(res, 500, 'text/plain', 'internal error');
      else res.destroy();
    }
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  const port = await listen(server, host, o.port);
  server.on('error', (err) => onError(`server: ${err.message}`));
  const shownHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return {
    url: `http://${shownHost}:${port}/`,
    port,
    host,
    setLive(value: boolean) {
      live = value;
      // The run's last lines and grid may have landed since the last poll: send them before the new status.
      refresh();
      for (const res of clients) send(res, 'status', status());
    },
    refresh,
    close: () =>
      new Promise<void>((done) => {
        clearInterval(timer);
        refresh();
        for (const res of clients) res.end();
        clients.clear();
        server.close(() => done());
        server.closeAllConnections();
      }),
  };
}

function reply(res: ServerResponse, code: number, type: string, body: string | Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(code, { 'content-type': type, 'x-content-type-options': 'nosniff', ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** Listens on `port`, or with none given on the default port or the next free one; returns the port. */
async function listen(server: Server, host: string, port: number | undefined): Promise<number> {
  const candidates = port !== undefined ? [port] : [...Array.from({ length: PORT_TRIES }, (_, k) => DEFAULT_DASHBOARD_PORT + k), 0];
  let lastError: Error | null = null;
  for (const p of candidates) {
    try {
      await new Promise<void>((done, fail) => {
        const onError = (err: Error) => fail(err);
        server.once('error', onError);
        server.listen(p, host, () => {
          server.off('error', onError);
          done();
        });
      });
      return (server.address() as AddressInfo).port;
    } catch (err) {
      lastError = err as Error;
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EADDRINUSE' || port !== undefined) break;
    }
  }
  const code = (lastError as NodeJS.ErrnoException | null)?.code;
  throw new Error(
    code === 'EADDRINUSE' ? `port ${port} on ${host} is in use (give another, or 0 for any free port)` : `cannot listen on ${host}:${port ?? DEFAULT_DASHBOARD_PORT}: ${lastError?.message}`,
  );
}
