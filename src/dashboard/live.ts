// `train --dashboard`: the dashboard of the run being trained, served from a
// worker thread. Nothing here throws at the training: a server that cannot
// start, or fails later, is reported and the training goes on without it.
import { Worker } from 'node:worker_threads';
import type { DashboardOptions } from './server.js';

export interface LiveDashboard {
  url: string;
  /** Final look at the run, a last `status` to the pages (not live any more), then the server stops. */
  close(): Promise<void>;
  /** The training ended but the page stays up (--dashboard-keep): pages show the run as ended. */
  ended(): void;
}

export interface LiveDashboardOptions {
  runDir: string;
  port?: number;
  host?: string;
  /** The run's resolved training options (shown on the page). */
  options?: Record<string, unknown>;
  /** Where messages go (warnings, errors). */
  log: (message: string) => void;
}

/** Starts the server for `runDir` in a worker; null (with the reason logged) when it cannot. */
export async function startLiveDashboard(o: LiveDashboardOptions): Promise<LiveDashboard | null> {
  const data: Omit<DashboardOptions, 'onError'> = { runDir: o.runDir, port: o.port, host: o.host, live: true, options: o.options };
  let worker: Worker;
  try {
    worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: data });
  } catch (err) {
    o.log(`dashboard: cannot start (${(err as Error).message}); training goes on without it`);
    return null;
  }
  let closed = false;
  let onClosed: (() => void) | null = null;
  worker.on('error', (err) => o.log(`dashboard: ${err.message}`));
  worker.on('exit', () => {
    closed = true;
    onClosed?.();
  });
  const ready = await new Promise<{ url: string } | null>((resolveReady) => {
    let settled = false;
    const done = (value: { url: string } | null) => {
      if (!settled) (settled = true), resolveReady(value);
    };
    worker.on('message', (m: { type: string; url?: string; message?: string }) => {
      if (m.type === 'ready') done({ url: m.url! });
      else if (m.type === 'failed') {
        o.log(`dashboard: ${m.message}; training goes on without it`);
        done(null);
      } else if (m.type === 'log') o.log(`dashboard: ${m.message}`);
      else if (m.type === 'closed') void worker.terminate();
    });
    worker.once('exit', () => done(null));
    // A worker that never answers must not hold the training up.
    setTimeout(() => {
      if (settled) return;
      o.log('dashboard: the server did not start within 20 s; training goes on without it');
      done(null);
    }, 20_000).unref();
  });
  if (!ready) {
    if (!closed) await worker.terminate();
    return null;
  }
  return {
    url: ready.url,
    ended: () => {
      if (!closed) worker.postMessage({ type: 'live', live: false });
    },
    close: () =>
      new Promise<void>((done) => {
        if (closed) return done();
        onClosed = done;
        worker.postMessage({ type: 'live', live: false });
        worker.postMessage({ type: 'close' });
        // A worker that does not answer in time is ended anyway.
        setTimeout(() => void worker.terminate(), 3000).unref();
      }),
  };
}
