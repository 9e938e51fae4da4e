// Device creation and error mapping: features are detected, GPU validation errors inside an error
// scope become BackendUnavailableError, and a disposed device refuses further use.

import { describe, expect, test } from 'vitest';
import { BackendUnavailableError } from '../../../engine/errors';
import { BufferUsage, createGpuDevice, withErrorScope, type GpuContext } from '../../../engine/backend/webgpu/device';

let gpu: GpuContext | undefined;
let skip = '';
try {
  gpu = await createGpuDevice();
} catch (e) {
  skip = `no WebGPU adapter (${(e as Error).message}); install Mesa >= 24 lavapipe to run GPU tests`;
}

describe('webgpu device', () => {
  test('reports adapter, features and limits', (ctx) => {
    if (!gpu) return ctx.skip(skip);
    expect(gpu.adapterName.length).toBeGreaterThan(0);
    if (/llvmpipe/.test(gpu.adapterName)) expect(gpu.software).toBe(true);
    expect(typeof gpu.features.f16).toBe('boolean');
    expect(gpu.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 2 ** 20);
    expect(gpu.limits.maxStorageBuffersPerShaderStage).toBeGreaterThanOrEqual(12); // the fused matvec binds 11
    // requested features are enabled on the device exactly when detected
    expect(gpu.device.features.has('shader-f16')).toBe(gpu.features.f16);
    expect(gpu.device.features.has('subgroups')).toBe(gpu.features.subgroups);
  });

  test('a validation error inside withErrorScope becomes BackendUnavailableError', async (ctx) => {
    if (!gpu) return ctx.skip(skip);
    const bad = withErrorScope(gpu.device, 'creating a bad buffer', () =>
      gpu!.device.createBuffer({ size: 16, usage: BufferUsage.MAP_READ | BufferUsage.STORAGE }),
    );
    await expect(bad).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(bad).rejects.toThrow(/creating a bad buffer/);
    const ok = await withErrorScope(gpu.device, 'creating a buffer', () => gpu!.device.createBuffer({ size: 16, usage: BufferUsage.STORAGE }));
    expect(ok.size).toBe(16);
    gpu.check(); // scoped errors are not left behind as failures
  });

  test('a destroyed device refuses further use with a typed error', async (ctx) => {
    if (!gpu) return ctx.skip(skip);
    const other = await createGpuDevice();
    other.destroy();
    expect(() => other.check()).toThrow(BackendUnavailableError);
    gpu.destroy();
  });
});
