// The dashboard's server in a worker thread (src/dashboard/live.ts starts it):
// it has its own event loop, so the page is answered while a training step
// holds the main thread, and the training never waits for the page.
import { parentPort, workerData } from 'node:worker_threads';
import { startDashboard, type DashboardOptions } from './server.js';

const port = parentPort!;
const options = workerData as Omit<DashboardOptions, 'onError'>;
try {
  const server = await startDashboard({ ...options, onError: (message) => port.postMessage({ type: 'log', message }) });
  port.on('message', (m: { type: string; live?: boolean }) => {
    if (m.type === 'live') server.setLive(m.live ?? false);
    else if (m.type === 'refresh') server.refresh();
    else if (m.type === 'close') void server.close().then(() => port.postMessage({ type: 'closed' }));
  });
  port.postMessage({ type: 'ready', url: server.url, port: server.port });
} catch (err) {
  port.postMessage({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
}
