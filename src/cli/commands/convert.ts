// `patch-diffusion convert`: network snapshots between our format and the
// PyTorch world's: an official EDM / Patch Diffusion `network-snapshot-*.pkl`
// (read without running its pickle code) or one of ours → our safetensors
// snapshot, or → a torch.save state dict (.pt/.pth) with the official names,
// which the official code loads with `net.load_state_dict(torch.load(path))`.
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { extname } from 'node:path';
import { buildSnapshotNetwork, resolveSnapshotPath } from '../../model/load-network.js';
import { writeTorchStateDict } from '../../io/torch-save.js';
import { readNetworkSnapshot, saveNetworkSnapshot } from '../../model/snapshot.js';

export function convertCommand(): Command {
  return new Command('convert')
    .description('convert a network snapshot: an official .pkl or our .safetensors (or a run directory) → our .safetensors snapshot, or → a torch .pt/.pth state dict for the official code')
    .argument('<input>', 'network-snapshot-*.pkl (EDM / Patch Diffusion), network-snapshot-*.safetensors, or a run directory')
    .argument('<output>', 'a .safetensors (our snapshot) or .pt/.pth (torch.save state dict of the EMA network, official names)')
    .option('--force', 'overwrite the output if it exists')
    .action((input: string, output: string, opts: { force?: boolean }) => {
      const kind = extname(output).toLowerCase();
      if (!['.safetensors', '.pt', '.pth'].includes(kind)) throw new Error(`convert: the output ${output} must end in .safetensors, .pt or .pth`);
      if (existsSync(output) && !opts.force) throw new Error(`convert: ${output} exists (pass --force to overwrite)`);
      const path = resolveSnapshotPath(input, 'convert');
      const { info, weights } = readNetworkSnapshot(path);
      try {
        // A snapshot that our network cannot run is not written.
        const net = buildSnapshotNetwork(path, info, weights);
        try {
          console.log(`${path}: ${String(info.network.model_type)} at ${info.dataset.resolution}×${info.dataset.resolution}, ` +
            `${net.parameterCount().toLocaleString('en-US')} parameters, ${weights.size} tensors`);
        } finally {
          net.dispose();
        }
        if (kind === '.safetensors') saveNetworkSnapshot(output, weights, info);
        else writeTorchStateDict(output, weights);
        console.log(`wrote ${output}${kind === '.safetensors' ? '' : ' (torch.save zip; load with net.load_state_dict(torch.load(path)))'}`);
      } finally {
        for (const t of weights.values()) t.dispose();
      }
    });
}
