// `patch-diffusion serve`: sample a trained network in the browser. Exports
// the snapshot's denoiser to ONNX, then serves the sampling page (src/web) on
// localhost, or writes it to a folder any static web server can host.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { exportModel, type ExportResult } from '../../onnx/export.js';
import { DiffusionModel } from '../../model/diffusion-model.js';
import { pageBytes, pageFiles, servePage, writeBundle } from '../../web/serve.js';
import type { ModelInfo } from '../../web/model-info.js';
import { parseNumber as num } from '../parse.js';

export function serveCommand(): Command {
  return new Command('serve')
    .description('sample a trained network in the browser: exports it to ONNX and serves a page that runs the EDM sampler with onnxruntime-web (WASM or WebGPU)')
    .requiredOption('--network <path>', 'a network snapshot (ours or an official .pkl) or a run directory (its newest snapshot)')
    .option('--port <n>', 'port on the host (0: any free port)', num, 8080)
    .option('--host <address>', 'address to listen on (another than 127.0.0.1 only when you mean to share it)', '127.0.0.1')
    .option('--bundle <dir>', 'write the page (HTML, scripts, onnxruntime-web, model) into this folder instead of serving it')
    .action(async (f: { network: string; port: number; host: string; bundle?: string }) => {
      const { bundle, url, stop, workDir } = await startSampling({ network: f.network, port: f.port, host: f.host, bundle: f.bundle });
      if (bundle) {
        console.log(`wrote the sampling page to ${bundle}: serve that folder over HTTP (e.g. npx http-server ${bundle}), not as file://`);
        return;
      }
      console.log(`sampling page: ${url}  (Ctrl-C stops)`);
      // However the process ends, the temporary export goes with it.
      const cleanUp = () => workDir && rmSync(workDir, { recursive: true, force: true });
      process.once('exit', cleanUp);
      await new Promise<void>((done) => {
        const quit = () => void stop().then(done);
        process.once('SIGINT', quit);
        process.once('SIGTERM', quit);
      });
      process.off('exit', cleanUp);
    });
}

export interface SamplingPage {
  /** The folder written (--bundle), else null. */
  bundle: string | null;
  /** The page's address when served. */
  url: string | null;
  info: ModelInfo;
  /** The temporary folder of the served export (removed by stop), else null. */
  workDir: string | null;
  stop(): Promise<void>;
}

/**
 * Exports the network and serves (or writes) its sampling page. `network` is a path (loaded on the CPU
 * without a latent network's VAE, which the page cannot use) or a model already loaded, which stays the
 * caller's to dispose.
 */
export async function startSampling(o: { network: string | DiffusionModel; port?: number; host?: string; bundle?: string }): Promise<SamplingPage> {
  const model = typeof o.network === 'string' ? DiffusionModel.load(o.network, { device: 'cpu', vae: false }) : o.network;
  let exported: ExportResult;
  const source = model.path ?? 'the network';
  try {
    // The page has no VAE decoder: a latent network is refused before any export work.
    if (model.info?.latent) throw new Error(`serve: ${source} is a latent-space network; the browser page has no VAE decoder yet (use generate)`);
    exported = exportModel(model);
  } finally {
    if (model !== o.network) model.dispose();
  }
  const names = exported.inputs.map((i) => i.name);
  const meta = exported.metadata;
  const info: ModelInfo = {
    resolution: Number(meta.resolution),
    channels: Number(meta.image_channels),
    labelDim: Number(meta.label_dim),
    coordinates: Number(meta.position_channels) > 0,
    maskPos: model.maskPos,
    sigmaMin: Number(meta.sigma_min),
    sigmaMax: Number.isFinite(Number(meta.sigma_max)) ? Number(meta.sigma_max) : null,
    source: source.split('/').pop()!,
    inputs: {
      x: 'x',
      sigma: 'sigma',
      pos: names.includes('x_pos') ? 'x_pos' : null,
      labels: names.includes('class_labels') ? 'class_labels' : null,
      output: exported.output.name,
    },
  };
  if (info.channels !== 1 && info.channels !== 3) throw new Error(`serve: a ${info.channels}-channel network cannot be shown as images`);
  const work = o.bundle ? resolve(o.bundle) : mkdtempSync(join(tmpdir(), 'pd-serve-'));
  const modelPath = join(work, 'model.onnx');
  mkdirSync(work, { recursive: true });
  writeFileSync(modelPath, exported.bytes);
  const files = pageFiles(modelPath, info);
  if (o.bundle) {
    files.delete('model.onnx'); // already in place
    writeBundle(work, files);
    return { bundle: work, url: null, info, workDir: null, stop: async () => {} };
  }
  let server: Awaited<ReturnType<typeof servePage>>;
  try {
    server = await servePage(files, { host: o.host ?? '127.0.0.1', port: o.port ?? 8080 });
  } catch (err) {
    // A port in use (or any failure to listen) leaves no temporary export behind.
    rmSync(work, { recursive: true, force: true });
    throw err;
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  const host = (o.host ?? '127.0.0.1').includes(':') ? `[${o.host}]` : o.host ?? '127.0.0.1';
  console.log(`serve: ${info.source} exported (${(exported.bytes.length / 1e6).toFixed(1)} MB ONNX); the page's files hold ${(pageBytes(files) / 1e6).toFixed(1)} MB`);
  return {
    bundle: null,
    url: `http://${host}:${port}/`,
    info,
    workDir: work,
    stop: () => new Promise<void>((done) => server.close(() => (rmSync(work, { recursive: true, force: true }), done()))),
  };
}
