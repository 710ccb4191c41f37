"""FLOPs of one training step of the official network, counted by PyTorch's
FlopCounterMode (convolutions and matrix products, forward and backward), per
patch size: the denominator of the GFLOP/s that bench/profile-step.ts prints
(--flops). Our own script; it imports the official modules from --official.

  .venv/bin/python bench/peer/flops.py --official DIR [--batch 32] [--resolution 32] [--channels 1]
prints e.g. "8:1.90,16:3.90,32:7.90" (GFLOP per step) on its last line.
"""
import argparse
import importlib
import sys
import types

import torch
from torch.utils.flop_counter import FlopCounterMode

p = argparse.ArgumentParser()
p.add_argument('--official', required=True)
p.add_argument('--batch', type=int, default=32)
p.add_argument('--resolution', type=int, default=32)
p.add_argument('--channels', type=int, default=1)
a = p.parse_args()
if importlib.util.find_spec('requests') is None:
    sys.modules['requests'] = types.ModuleType('requests')  # dnnlib/util.py imports it; never called here
sys.path.insert(0, a.official)
networks = importlib.import_module('training.networks')

R, C = a.resolution, a.channels
# The `small` preset (src/networks/config.ts, 'ddpmpp-cpu'), as bench/peer.ts builds it.
net = networks.Patch_EDMPrecond(img_resolution=R, img_channels=C + 2, out_channels=C, label_dim=0, augment_dim=0,
                                model_type='SongUNet', embedding_type='positional', encoder_type='standard',
                                decoder_type='standard', channel_mult_noise=1, resample_filter=[1, 1], model_channels=32,
                                channel_mult=[1, 2, 2], num_blocks=1, attn_resolutions=[16], dropout=0).train()
out = []
for s in (R // 4, R // 2, R):
    n = a.batch * (R // s)
    x = torch.randn(n, C, s, s)
    pos = torch.rand(n, 2, s, s) * 2 - 1
    sigma = torch.rand(n, 1, 1, 1) + 0.1
    with FlopCounterMode(display=False) as counter:
        net(x, sigma, x_pos=pos).square().sum().backward()
    gflop = counter.get_total_flops() / 1e9
    print(f'patch {s}: {n} images, {gflop:.2f} GFLOP per step (forward + backward)')
    out.append(f'{s}:{gflop:.3f}')
print(','.join(out))
