/// <reference lib="dom" />
// The sampling page's script (runs in the browser; served by `patch-diffusion
// serve`, or from a folder written by `serve --bundle`): loads model.onnx with
// onnxruntime-web (WASM, or WebGPU where the browser has it) and model.json
// (what the snapshot says: resolution, channels, classes, coordinates, σ
// range), runs the EDM Heun sampler of src/web/sampler.ts with generate's
// per-seed noise, and draws each image as it denoises.
import { toRgba, webSample, type WebDenoiser } from './sampler.js';
import type { ModelInfo } from './model-info.js';

interface OrtTensorCtor {
  new (type: 'float32', data: Float32Array, dims: readonly number[]): unknown;
}
interface OrtSession {
  run(feeds: Record<string, unknown>): Promise<Record<string, { data: Float32Array }>>;
}
interface Ort {
  Tensor: OrtTensorCtor;
  InferenceSession: { create(url: string, options: { executionProviders: string[] }): Promise<OrtSession> };
  env: { wasm: { wasmPaths?: string; numThreads?: number } };
}

/** What the page exposes for tests and for people at the console. */
interface PageState {
  status: 'loading' | 'ready' | 'sampling' | 'done' | 'error';
  message: string;
  backend: string;
  info: ModelInfo | null;
  /** The last run's images: RGBA bytes per image, and their side. */
  images: number[][];
  size: number;
  classes: number[] | null;
}

const state: PageState = { status: 'loading', message: '', backend: '', info: null, images: [], size: 0, classes: null };
(window as unknown as { pd: PageState }).pd = state;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const say = (status: PageState['status'], message: string) => {
  state.status = status;
  state.message = message;
  const el = $('status');
  el.textContent = message;
  el.className = status === 'error' ? 'error' : '';
};

let ort: Ort;
let session: OrtSession | null = null;

async function load(backend: string): Promise<void> {
  say('loading', `loading model.onnx (${backend})…`);
  session = null;
  try {
    const response = await fetch('model.json');
    if (!response.ok) throw new Error(`model.json: HTTP ${response.status} (serve the folder that \`patch-diffusion serve --bundle\` wrote)`);
    const info = (await response.json()) as ModelInfo;
    if (!(info.resolution > 1 && info.channels > 0 && info.inputs?.x)) throw new Error('model.json does not describe a Patch Diffusion model (resolution, channels, inputs)');
    state.info = info;
    ort.env.wasm.wasmPaths = new URL('./ort/', import.meta.url).href;
    session = await ort.InferenceSession.create('model.onnx', { executionProviders: [backend] });
    state.backend = backend;
    $('classRow').hidden = info.labelDim === 0;
    ($('canvasSize') as HTMLInputElement).value ||= String(info.resolution);
    say('ready', `${info.source}: ${info.resolution}×${info.resolution}×${info.channels}${info.labelDim ? `, ${info.labelDim} classes` : ''}, on ${backend}`);
  } catch (e) {
    say('error', `could not load the model: ${e instanceof Error ? e.message : String(e)}`);
  }
}

async function sample(): Promise<void> {
  const info = state.info;
  if (!session || !info) return say('error', 'no model loaded');
  const num = (id: string) => Number(($(id) as HTMLInputElement).value);
  const first = num('seed'), count = num('count'), steps = num('steps'), size = num('canvasSize') || info.resolution;
  const classText = ($('classIndex') as HTMLInputElement).value.trim();
  const cfgText = ($('cfg') as HTMLInputElement).value.trim();
  const seeds = Array.from({ length: count }, (_, k) => first + k);
  const s = session;
  const net: WebDenoiser = async (x, sigma, pos, labels, shape) => {
    const feeds: Record<string, unknown> = {
      [info.inputs.x]: new ort.Tensor('float32', x, shape),
      [info.inputs.sigma]: new ort.Tensor('float32', sigma, [shape[0]]),
    };
    if (info.inputs.pos && pos) feeds[info.inputs.pos] = new ort.Tensor('float32', pos, [shape[0], 2, shape[2], shape[3]]);
    if (info.inputs.labels && labels) feeds[info.inputs.labels] = new ort.Tensor('float32', labels, [shape[0], info.labelDim]);
    const out = await s.run(feeds);
    return out[info.inputs.output]!.data;
  };
  const grid = $('images');
  grid.replaceChildren();
  const canvases = seeds.map((seed) => {
    const figure = document.createElement('figure');
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = size;
    canvas.style.width = canvas.style.height = `${Math.max(96, size * 2)}px`;
    const caption = document.createElement('figcaption');
    caption.textContent = `seed ${seed}`;
    figure.append(canvas, caption);
    grid.append(figure);
    return canvas;
  });
  const draw = (images: Float64Array) => {
    toRgba(images, seeds.length, info.channels, size).forEach((rgba, k) => {
      canvases[k]!.getContext('2d')!.putImageData(new ImageData(rgba, size, size), 0, 0);
    });
  };
  say('sampling', `sampling ${count} image${count > 1 ? 's' : ''}, ${steps} steps…`);
  const t0 = performance.now();
  try {
    const r = await webSample(net, {
      seeds, channels: info.channels, resolution: info.resolution, imageSize: size, coordinates: info.coordinates, maskPos: info.maskPos,
      labelDim: info.labelDim, classIndex: classText === '' ? null : Number(classText), cfg: cfgText === '' ? null : Number(cfgText),
      numSteps: steps, sigmaMin: Math.max(0.002, info.sigmaMin), sigmaMax: Math.min(80, info.sigmaMax ?? Infinity),
      onStep: async (step, total, x) => {
        // The state at high noise is mostly noise; drawing it shows the image emerge.
        draw(x);
        say('sampling', `step ${step} of ${total}`);
        await new Promise((r) => requestAnimationFrame(() => r(null)));
      },
    });
    draw(r.images);
    state.images = toRgba(r.images, seeds.length, info.channels, size).map((a) => Array.from(a));
    state.size = size;
    state.classes = r.classes;
    say('done', `${count} image${count > 1 ? 's' : ''} in ${((performance.now() - t0) / 1000).toFixed(1)} s on ${state.backend}${r.classes ? `; classes ${r.classes.join(', ')}` : ''}`);
  } catch (e) {
    say('error', `sampling failed: ${e instanceof Error ? e.message : String(e)}`);
  }
}

async function main(): Promise<void> {
  try {
    ort = (await import('./ort/ort.min.mjs' as string)) as Ort;
  } catch (e) {
    return say('error', `could not load onnxruntime-web (ort/ort.min.mjs): ${e instanceof Error ? e.message : String(e)}`);
  }
  const backendSelect = $('backend') as HTMLSelectElement;
  if (!('gpu' in navigator)) backendSelect.querySelector('option[value="webgpu"]')?.setAttribute('disabled', '');
  const wanted = new URLSearchParams(location.search).get('backend');
  if (wanted) backendSelect.value = wanted;
  backendSelect.addEventListener('change', () => void load(backendSelect.value));
  $('run').addEventListener('click', () => void sample());
  await load(backendSelect.value);
}

void main();
