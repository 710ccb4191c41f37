// The device the device-aware tests run on: PD_TEST_DEVICE (cpu, cuda or
// cuda:N; default cpu). scripts/gpu-check.sh sets it to cuda on a GPU
// machine; on the CPU the same tests run on the CPU. A CUDA device the build
// cannot use fails at once with resolveDevice's error, never silently on the CPU.
import { resolveDevice, type Device, type Tensor } from '../../src/tensor/index.js';

export const TEST_DEVICE: Device = resolveDevice(process.env.PD_TEST_DEVICE || 'cpu');

/** The tensor on TEST_DEVICE (itself when it is there already). */
export function onDevice(t: Tensor): Tensor {
  return t.device === TEST_DEVICE || (TEST_DEVICE === 'cuda' && t.device === 'cuda:0') ? t : t.to({ device: TEST_DEVICE });
}
