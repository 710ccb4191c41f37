// `patch-diffusion export`: a snapshot's preconditioned denoiser D(x; σ, x_pos[, class_labels]) as an ONNX model.
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { writeFileAtomic } from '../../io/atomic.js';
import { exportSnapshot, ONNX_OPSET } from '../../onnx/export.js';

export function exportCommand(): Command {
  return new Command('export')
    .description(`write a snapshot's denoiser D(x; σ, x_pos[, class_labels]) as an ONNX model (opset ${ONNX_OPSET}; dynamic batch and canvas size) for onnxruntime (Node, Python, the browser)`)
    .requiredOption('--network <path>', 'a network-snapshot-*.safetensors (or an official .pkl), or a run directory (its newest snapshot)')
    .requiredOption('--out <file>', 'the .onnx file to write')
    .option('--force', 'overwrite the output if it exists')
    .action((opts: { network: string; out: string; force?: boolean }) => {
      if (!opts.out.toLowerCase().endsWith('.onnx')) throw new Error(`export: --out ${opts.out} must end in .onnx`);
      if (existsSync(opts.out) && !opts.force) throw new Error(`export: ${opts.out} exists (pass --force to overwrite)`);
      const r = exportSnapshot(opts.network);
      writeFileAtomic(opts.out, [r.bytes]);
      const dims = (d: (number | string)[]) => `[${d.join(', ')}]`;
      console.log(`${r.path}: ${r.metadata.precond_class} (${r.metadata.model_type}) at ${r.metadata.resolution}×${r.metadata.resolution}, ` +
        `${r.storedValues.toLocaleString('en-US')} stored values, ${r.nodeCount} nodes`);
      console.log(`inputs: ${r.inputs.map((i) => `${i.name} ${dims(i.dims)}`).join(', ')}; output: ${r.output.name} ${dims(r.output.dims)}` +
        ` (N, H, W dynamic; H, W multiples of ${r.metadata.size_multiple})`);
      console.log(`wrote ${opts.out} (${(r.bytes.length / 2 ** 20).toFixed(2)} MiB, ONNX opset ${ONNX_OPSET})`);
    });
}
