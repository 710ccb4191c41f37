#!/usr/bin/env python3
"""What bf16 can give on this CPU at all, measured with PyTorch itself.

Our own code (none of the official implementation): it imports the official
SongUNet (training/networks.py of a Patch Diffusion checkout, --official) at
several widths and times its forward + backward pass at one patch size in
three ways, interleaved in rounds so a drifting machine affects all alike:

  fp32       the network and the input in float32;
  autocast   torch.autocast('cpu', bfloat16): convolutions and matmuls in
             bf16, norms in float32 (what our --precision bf16 does);
  all-bf16   every weight and activation in bf16 (group norms too): the
             least memory traffic libtorch's kernels can have.

If autocast is well under 2x fp32 for a network, no libtorch-based bf16 path
reaches 2x the official fp32 step for it, ours included: the convolutions are
the same oneDNN kernels on both sides.

  python bench/peer/bf16_ceiling.py --official DIR [--widths 32,64,128]
         [--patch 32] [--batch 32] [--rounds 2] [--threads 2]
"""

import argparse
import copy
import platform
import sys
import time
import types


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--official', required=True, help='checkout of Zhendong-Wang/Patch-Diffusion')
    ap.add_argument('--widths', default='32,64,128', help='model_channels to try (channel_mult [1,2,2], 1 block)')
    ap.add_argument('--patch', type=int, default=32)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args()
    sys.path.insert(0, a.official)
    try:
        import requests  # noqa: F401 (dnnlib imports it at the top; the timed path never calls it)
    except ImportError:
        sys.modules['requests'] = types.ModuleType('requests')
    import torch
    from training import networks

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    flags = next((l for l in open('/proc/cpuinfo') if l.startswith('flags')), '')
    print(f'machine: {cpu}; avx512_bf16 {"avx512_bf16" in flags}, amx_bf16 {"amx_bf16" in flags}; '
          f'torch {torch.__version__}, {a.threads} threads; patch {a.patch}, batch {a.batch}, forward + backward')
    print(f'{"width":>5}  {"params":>10}  {"fp32 ms":>8}  {"autocast ms":>11}  {"all-bf16 ms":>11}  {"fp32/autocast":>13}  {"fp32/all-bf16":>13}')
    for width in [int(w) for w in a.widths.split(',')]:
        net = networks.SongUNet(img_resolution=32, in_channels=3, out_channels=1, label_dim=0,
                                embedding_type='positional', encoder_type='standard', decoder_type='standard',
                                channel_mult_noise=1, resample_filter=[1, 1], model_channels=width, channel_mult=[1, 2, 2],
                                num_blocks=1, attn_resolutions=[16], dropout=0)
        bf = copy.deepcopy(net).to(torch.bfloat16)
        modes = {'fp32': (net, torch.float32, False), 'autocast': (net, torch.float32, True), 'all-bf16': (bf, torch.bfloat16, False)}

        def step(mode):
            m, dtype, autocast = modes[mode]
            x = torch.randn(a.batch, 3, a.patch, a.patch, dtype=dtype)
            noise = (torch.rand(a.batch) * 2 + 0.1).log().div(4).to(dtype)
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
                y = m(x, noise, None)
            y.float().square().mean().backward()

        times = {k: [] for k in modes}
        for mode in modes:
            step(mode)  # warm-up (oneDNN primitive creation)
        for r in range(a.rounds):
            for mode in (list(modes) if r % 2 == 0 else list(reversed(modes))):
                t = time.perf_counter()
                step(mode)
                step(mode)
                times[mode].append((time.perf_counter() - t) / 2 * 1000)
        best = {k: min(v) for k, v in times.items()}
        params = sum(p.numel() for p in net.parameters())
        print(f'{width:>5}  {params:>10,}  {best["fp32"]:>8.0f}  {best["autocast"]:>11.0f}  {best["all-bf16"]:>11.0f}  '
              f'{best["fp32"] / best["autocast"]:>12.2f}x  {best["fp32"] / best["all-bf16"]:>12.2f}x', flush=True)


if __name__ == '__main__':
    main()
