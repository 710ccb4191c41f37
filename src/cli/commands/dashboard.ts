// `patch-diffusion dashboard <run>`: the training page of a run directory:
// its history when the run is finished, and live when another process is
// still training it (the page follows stats.jsonl and the sample grids).
import { Command } from 'commander';
import { checkRunDir, startDashboard } from '../../dashboard/server.js';
import { parsePort } from '../parse.js';

export function dashboardCommand(): Command {
  return new Command('dashboard')
    .description('serve the training page of a run directory (loss, img/s, memory, sample grids, metrics), live while it trains')
    .argument('<run>', 'a run directory (the folder `train` printed as "Run directory")')
    .option('--port <n>', 'port (default 6060 or the next free one; 0: any free port)', parsePort)
    .option('--host <address>', 'address to listen on (default 127.0.0.1, this machine only)')
    .action(async (run: string, opts: { port?: number; host?: string }) => {
      const runDir = checkRunDir(run);
      const server = await startDashboard({ runDir, port: opts.port, host: opts.host });
      console.log(`Dashboard of ${runDir}: ${server.url} (Ctrl-C to stop)`);
      await new Promise<void>((done) => {
        const stop = () => done();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await server.close();
    });
}
