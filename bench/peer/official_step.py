#!/usr/bin/env python3
"""The official side of bench/peer.ts: a long-lived worker that times the
OFFICIAL Patch Diffusion training step and the official EDM sampler.

This file is our own code. It contains none of the official implementation:
it puts the official checkout (--official, given in the configuration) on
sys.path and imports from it

  * training/networks.py    Patch_EDMPrecond (and through it SongUNet/DhariwalUNet),
  * training/patch_loss.py  Patch_EDMLoss (pachify, σ draw, weighted loss),
  * torch_utils/training_stats.py and torch_utils/misc.py (per-round loss
    report and ddp_sync, as the loop uses them),
  * generate.py             edm_sampler, sample_with_cfg and StackedRandomGenerator:
                            only these three definitions are compiled from the
                            file (ast), because importing generate.py runs its
                            top-level imports of click, tqdm, PIL and diffusers,
                            none of which the sampler needs.

With "compile" in the configuration ("default" or "reduce-overhead"), the
official network is wrapped in torch.compile (mode None or that mode;
dynamic=False, so each patch size gets its own specialised graph instead of a
slower shape-generic one after the second size), the training network and
the sampler's EMA copy alike: what a PyTorch user adds in one line. The
compilation happens in the warm-up steps. "reduce-overhead" captures CUDA
graphs on a GPU (on a CPU it is the default mode); each accumulation round
then starts with torch.compiler.cudagraph_mark_step_begin().

What one timed training step does is what training/training_loop.py does per
optimizer step (read next to it): zero_grad(set_to_none=True); per
accumulation round batch_mul minibatches of batch_gpu uint8 images, cat,
/127.5 − 1, the loss, training_stats.report('Loss/loss', loss),
loss.sum().mul(loss_scaling / batch_gpu_total / batch_mul).backward() inside
misc.ddp_sync; then the learning-rate ramp, nan_to_num of every gradient,
Adam.step(), the EMA update by copy_(lerp), and the image counter. The patch
size is fixed per command (the benchmark times each size on its own) and
batch_mul comes with the command (R/s; see bench/peer.ts for why the official
table cannot be used at R = 32).

Protocol: the configuration is argv[1] (JSON). Every reply is one line on
stdout, "@@PEER " + JSON; the first one describes the worker. Commands come as
JSON lines on stdin:
  {"cmd": "train", "patch": s, "batch_mul": m, "steps": k}
      → {"ms": wall ms of the k steps, "cpu_ms": process CPU ms, "loss": last round's mean loss}
  {"cmd": "sample", "steps": n, "batch": b, "seed0": first seed}
      → {"ms": ..., "cpu_ms": ..., "pixel_mean": mean of the uint8 images}
  {"cmd": "stats"} → {"peak_rss_mb": ..., "cur_nimg": ...}
  {"cmd": "quit"}
An error is answered with {"error": message} and the worker exits with status 1.
"""

import ast
import copy
import importlib
import importlib.util
import json
import os
import platform
import resource
import sys
import time
import types

TAG = '@@PEER '


def reply(obj):
    sys.stdout.write(TAG + json.dumps(obj) + '\n')
    sys.stdout.flush()


def fail(message):
    reply({'error': message})
    sys.exit(1)


def need_module(name, how):
    try:
        return importlib.import_module(name)
    except ImportError as e:
        fail(f'{sys.executable} cannot import {name} ({e}); {how}')


# ---- importing the official code -----------------------------------------------------------

def stub_missing(names):
    """Placeholder modules for third-party packages the official modules import
    at the top but never use on the benchmarked path (dnnlib/util.py imports
    requests for open_url only). Any use raises, naming the package."""
    stubbed = []
    for name in names:
        if importlib.util.find_spec(name.split('.')[0]) is not None:
            try:
                importlib.import_module(name)
                continue
            except ImportError:
                pass
        parts = name.split('.')
        for k in range(1, len(parts) + 1):
            sub = '.'.join(parts[:k])
            if sub in sys.modules:
                continue
            mod = types.ModuleType(sub)

            def missing(attr, _sub=sub):
                if attr.startswith('__'):
                    raise AttributeError(attr)

                def unavailable(*_a, **_k):
                    raise ImportError(f'{_sub}.{attr}: {_sub} is not installed (stubbed by bench/peer/official_step.py)')
                return unavailable
            mod.__getattr__ = missing
            mod.__path__ = []  # lets "import a.b" find the stubbed submodule
            sys.modules[sub] = mod
            if k > 1:
                setattr(sys.modules['.'.join(parts[:k - 1])], parts[k - 1], mod)
        stubbed.append(name)
    return stubbed


def load_definitions(path, names, namespace):
    """Compiles only the named top-level functions/classes of a source file into
    `namespace` (the file's other top-level statements, its imports included,
    are not run). The definitions keep their file name and line numbers."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), filename=path)
    nodes = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in names]
    found = {n.name for n in nodes}
    if found != set(names):
        fail(f'{path} does not define {", ".join(sorted(set(names) - found))} (is --official a Patch Diffusion checkout?)')
    exec(compile(ast.Module(body=nodes, type_ignores=[]), path, 'exec'), namespace)
    return {n: namespace[n] for n in names}


# ---- the worker ----------------------------------------------------------------------------

def main():
    cfg = json.loads(sys.argv[1])
    official = os.path.abspath(cfg['official'])
    for rel in ('training/networks.py', 'training/patch_loss.py', 'generate.py', 'torch_utils/training_stats.py'):
        if not os.path.isfile(os.path.join(official, rel)):
            fail(f'{official} has no {rel}: --official must be a checkout of Zhendong-Wang/Patch-Diffusion')

    torch = need_module('torch', 'install PyTorch into this Python (pip install torch; CPU-only: pip install torch --index-url https://download.pytorch.org/whl/cpu) or pass --python PATH')
    np = need_module('numpy', 'install numpy into this Python (pip install numpy) or pass --python PATH')

    threads = int(cfg['threads'])
    torch.set_num_threads(threads)
    device = torch.device(cfg['device'])
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            fail(f'--device {cfg["device"]}: this PyTorch ({torch.__version__}) sees no CUDA device')
        if device.index is not None:
            torch.cuda.set_device(device)
    # The official loop's numerics settings.
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False

    stubbed = stub_missing(['requests'])
    sys.path.insert(0, official)
    networks = importlib.import_module('training.networks')
    patch_loss = importlib.import_module('training.patch_loss')
    training_stats = importlib.import_module('torch_utils.training_stats')
    misc = importlib.import_module('torch_utils.misc')
    gen = load_definitions(os.path.join(official, 'generate.py'), ['sample_with_cfg', 'edm_sampler', 'StackedRandomGenerator'],
                           {'torch': torch, 'np': np, '__name__': 'generate'})
    edm_sampler, StackedRandomGenerator = gen['edm_sampler'], gen['StackedRandomGenerator']

    # As training_loop.py: numpy seed, then the torch seed drawn from it.
    seed = int(cfg.get('seed', 0))
    np.random.seed(seed % (1 << 31))
    torch.manual_seed(np.random.randint(1 << 31))

    # The network: Patch_EDMPrecond(**network_kwargs, img_resolution, img_channels = C + 2, out_channels = C, label_dim).
    kwargs = dict(cfg['network'])
    if kwargs.get('sigma_max', 0) is None:
        kwargs['sigma_max'] = float('inf')
    resolution = int(kwargs['img_resolution'])
    channels = int(kwargs['out_channels'])
    net = networks.Patch_EDMPrecond(**kwargs)
    net.train().requires_grad_(True).to(device)
    channels_last = bool(cfg.get('channels_last', False))
    if channels_last:
        net.to(memory_format=torch.channels_last)
    compile_mode = cfg.get('compile')
    if compile_mode not in (None, 'default', 'reduce-overhead'):
        fail(f'compile must be "default" or "reduce-overhead", got {compile_mode!r}')
    if compile_mode and device.type == 'cuda':
        # Inductor generates Triton kernels on a GPU: say so at once, not after minutes of tracing.
        try:
            from torch.utils._triton import has_triton
        except ImportError:
            has_triton = None
        if has_triton is not None and not has_triton():
            fail(f'torch.compile on {device} needs Triton, which {sys.executable} lacks (pip install triton)')
    ddp = net
    if cfg.get('ddp'):
        # train.py always wraps the network in DDP, even on one GPU; here one rank of a gloo (CPU) or NCCL group.
        import tempfile
        store = tempfile.NamedTemporaryFile(prefix='peer-ddp-', delete=False).name
        torch.distributed.init_process_group('nccl' if device.type == 'cuda' else 'gloo', init_method=f'file://{store}', rank=0, world_size=1)
        ddp = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.type == 'cuda' else None, broadcast_buffers=False)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    train_net, sample_net = ddp, ema
    if compile_mode:
        def compiled(module):
            return torch.compile(module, mode=None if compile_mode == 'default' else compile_mode, dynamic=False)
        train_net, sample_net = compiled(ddp), compiled(ema)
    mark_step = compile_mode == 'reduce-overhead' and device.type == 'cuda'
    loss_fn = patch_loss.Patch_EDMLoss()
    o = cfg['optim']
    optimizer = torch.optim.Adam(params=net.parameters(), lr=o['lr'], betas=[0.9, 0.999], eps=1e-8)

    batch_size = int(cfg['batch'])
    batch_gpu = int(cfg.get('batch_gpu') or batch_size)
    batch_gpu_total = batch_size  # world size 1
    rounds = batch_gpu_total // batch_gpu
    loss_scaling = 1.0
    batch_mul_avg = float(cfg['batch_mul_avg'])
    ema_halflife_kimg = float(o['ema_halflife_kimg'])
    ema_rampup_ratio = o['ema_rampup_ratio']
    lr_rampup_kimg = float(o['lr_rampup_kimg'])

    # Data: a pool of random uint8 images (the timing does not depend on the pixels), served
    # batch_gpu at a time in a shuffled cycle, as next(dataset_iterator) would hand them over.
    pool_size = int(cfg.get('pool', 4096))
    data_gen = torch.Generator().manual_seed(seed + 12345)
    pool = torch.randint(0, 256, (pool_size, channels, resolution, resolution), dtype=torch.uint8, generator=data_gen)
    pool_labels = torch.zeros([pool_size, 0])
    order = torch.randperm(pool_size, generator=data_gen)
    at = [0]

    def next_minibatch():
        if at[0] + batch_gpu > pool_size:
            order.copy_(torch.randperm(pool_size, generator=data_gen))
            at[0] = 0
        idx = order[at[0]:at[0] + batch_gpu]
        at[0] += batch_gpu
        return pool[idx], pool_labels[idx]

    state = {'cur_nimg': 0, 'loss': None}

    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    def train_step(patch_size, batch_mul):
        # ---- the body of training_loop.py's `while True:` up to the tick maintenance ----
        cur_nimg = state['cur_nimg']
        optimizer.zero_grad(set_to_none=True)
        for round_idx in range(rounds):
            if mark_step:
                torch.compiler.cudagraph_mark_step_begin()
            with misc.ddp_sync(ddp, (round_idx == rounds - 1)):
                images, labels = [], []
                for _ in range(batch_mul):
                    images_, labels_ = next_minibatch()
                    images.append(images_), labels.append(labels_)
                images, labels = torch.cat(images, dim=0), torch.cat(labels, dim=0)
                images = images.to(device).to(torch.float32) / 127.5 - 1
                labels = labels.to(device)
                loss = loss_fn(net=train_net, images=images, patch_size=patch_size, resolution=resolution, labels=labels, augment_pipe=None)
                training_stats.report('Loss/loss', loss)
                loss.sum().mul(loss_scaling / batch_gpu_total / batch_mul).backward()
        for g in optimizer.param_groups:
            g['lr'] = o['lr'] * min(cur_nimg / max(lr_rampup_kimg * 1000, 1e-8), 1)
        for param in net.parameters():
            if param.grad is not None:
                torch.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
        optimizer.step()
        ema_halflife_nimg = ema_halflife_kimg * 1000
        if ema_rampup_ratio is not None:
            ema_halflife_nimg = min(ema_halflife_nimg, cur_nimg * ema_rampup_ratio)
        ema_beta = 0.5 ** (batch_size * batch_mul_avg / max(ema_halflife_nimg, 1e-8))
        for p_ema, p_net in zip(ema.parameters(), net.parameters()):
            p_ema.copy_(p_net.detach().lerp(p_ema, ema_beta))
        state['cur_nimg'] = cur_nimg + int(batch_size * batch_mul_avg)
        state['loss'] = loss

    # The sampler's network: the EMA copy (generate.py samples the pickled EMA, which has
    # requires_grad False and runs without a no_grad context, as here).
    def coordinate_grid(batch, size):
        # The full-canvas coordinate channels generate.py builds (x_start = y_start = 0), [B, 2, S, S].
        idx = torch.arange(size)
        x = (idx.view(1, -1).repeat(size, 1) / (resolution - 1) - 0.5) * 2.
        y = (idx.view(-1, 1).repeat(1, size) / (resolution - 1) - 0.5) * 2.
        return torch.stack([x, y], dim=0).to(device).unsqueeze(0).repeat(batch, 1, 1, 1)

    def sample(num_steps, batch, seed0):
        seeds = list(range(seed0, seed0 + batch))
        rnd = StackedRandomGenerator(device, seeds)
        pos = coordinate_grid(batch, resolution)
        latents = rnd.randn([batch, channels, resolution, resolution], device=device)
        images = edm_sampler(sample_net, latents, pos, False, None, None, randn_like=rnd.randn_like, num_steps=num_steps)
        # generate.py's conversion to uint8 HWC on the host.
        return (images * 127.5 + 128).clip(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    reply({
        'ready': True,
        'python': f'{platform.python_implementation()} {platform.python_version()}',
        'executable': sys.executable,
        'torch': torch.__version__,
        'numpy': np.__version__,
        'torch_config': {
            'threads': torch.get_num_threads(),
            'interop_threads': torch.get_num_interop_threads(),
            'mkldnn': bool(torch.backends.mkldnn.is_available()),
            'openmp': bool(torch.backends.openmp.is_available()),
            'mkl': bool(torch.backends.mkl.is_available()),
            'cuda': torch.version.cuda,
            'device': str(device),
            'device_name': torch.cuda.get_device_name(device) if device.type == 'cuda' else None,
        },
        'parameters': sum(p.numel() for p in net.parameters()),
        'channels_last': channels_last,
        'ddp': bool(cfg.get('ddp')),
        'compile': compile_mode,
        'stubbed': stubbed,
        'official': official,
    })

    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        msg = json.loads(line)
        cmd = msg.get('cmd')
        try:
            if cmd == 'train':
                k = int(msg['steps'])
                patch, mul = int(msg['patch']), int(msg['batch_mul'])
                sync()
                c0, t0 = time.process_time(), time.perf_counter()
                for _ in range(k):
                    train_step(patch, mul)
                sync()
                t1, c1 = time.perf_counter(), time.process_time()
                reply({'ms': (t1 - t0) * 1000, 'cpu_ms': (c1 - c0) * 1000, 'loss': float(state['loss'].mean().item())})
            elif cmd == 'sample':
                sync()
                c0, t0 = time.process_time(), time.perf_counter()
                out = sample(int(msg['steps']), int(msg['batch']), int(msg.get('seed0', 0)))
                t1, c1 = time.perf_counter(), time.process_time()
                reply({'ms': (t1 - t0) * 1000, 'cpu_ms': (c1 - c0) * 1000, 'pixel_mean': float(out.mean())})
            elif cmd == 'stats':
                reply({'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'cur_nimg': state['cur_nimg'],
                       'cuda_peak_mb': torch.cuda.max_memory_allocated(device) / 2**20 if device.type == 'cuda' else None})
            elif cmd == 'quit':
                reply({'bye': True})
                break
            else:
                fail(f'unknown command {cmd!r}')
        except SystemExit:
            raise
        except BaseException as e:  # report, then exit: the parent prints it
            import traceback
            fail(f'{type(e).__name__}: {e}\n' + ''.join(traceback.format_exc().splitlines(True)[-6:]))
    if cfg.get('ddp'):
        torch.distributed.destroy_process_group()


if __name__ == '__main__':
    main()
