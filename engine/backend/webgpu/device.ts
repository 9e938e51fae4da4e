// WebGPU adapter/device creation for the engine (Dawn through the `webgpu` npm package).
// Every failure to get a usable device becomes BackendUnavailableError so the runtime can fall
// back to the CPU backend; device loss after creation is remembered and rethrown on next use.

import { BackendUnavailableError, OutOfMemoryError } from '../../errors';

/** Dawn toggles that unlock f16 on NVIDIA/Vulkan (harmless elsewhere). */
export const DEFAULT_DAWN_FLAGS = ['enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia'];

// GPUBufferUsage / GPUMapMode values from the WebGPU spec, so no globals need installing.
export const BufferUsage = {
  MAP_READ: 0x0001,
  MAP_WRITE: 0x0002,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  INDEX: 0x0010,
  VERTEX: 0x0020,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
  INDIRECT: 0x0100,
  QUERY_RESOLVE: 0x0200,
} as const;
export const MapMode = { READ: 0x0001, WRITE: 0x0002 } as const;

export interface GpuDeviceOptions {
  /** Dawn instance flags (e.g. from CACHET_DAWN_FLAGS); defaults to DEFAULT_DAWN_FLAGS. */
  dawnFlags?: string[];
  /** Use shader-f16 when the adapter has it (default true). */
  allowF16?: boolean;
  /** Use subgroups when the adapter has them (default true). */
  allowSubgroups?: boolean;
  /** Request timestamp-query when available (for per-kernel timing in benches). */
  timestamps?: boolean;
}

export interface GpuFeatures {
  f16: boolean;
  subgroups: boolean;
  timestamps: boolean;
}

export interface GpuContext {
  instance: GPU;
  adapter: GPUAdapter;
  device: GPUDevice;
  adapterName: string;
  /** A CPU implementation (lavapipe/llvmpipe, SwiftShader, WARP): correct but slower than the CPU backend. */
  software: boolean;
  features: GpuFeatures;
  /** Smallest subgroup size the adapter reports (0 when unknown). */
  subgroupMinSize: number;
  limits: {
    maxStorageBufferBindingSize: number;
    maxBufferSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeWorkgroupsPerDimension: number;
    maxStorageBuffersPerShaderStage: number;
  };
  /** Throws BackendUnavailableError if the device was lost or hit an uncaptured error. */
  check(): void;
  destroy(): void;
}

let gpuModule: Promise<{ create(flags: string[]): GPU }> | undefined;

async function loadWebGpu(): Promise<{ create(flags: string[]): GPU }> {
  gpuModule ??= import('webgpu') as Promise<{ create(flags: string[]): GPU }>;
  try {
    return await gpuModule;
  } catch (cause) {
    gpuModule = undefined;
    throw new BackendUnavailableError(
      'the webgpu (Dawn) module could not be loaded',
      'Reinstall the extension for your platform, or choose the CPU backend.',
      { cause },
    );
  }
}

/**
 * One Dawn instance per process (per flag set), kept for the process's life. Creating an instance
 * per device and letting old ones be garbage-collected crashed Node inside Dawn's threads now and
 * then (a pthread mutex assertion, about 1 run in 10 of the backend tests on lavapipe).
 */
const dawnInstances = new Map<string, GPU>();
function dawnInstance(create: (flags: string[]) => GPU, flags: string[]): GPU {
  const key = flags.join('\n');
  let gpu = dawnInstances.get(key);
  if (!gpu) {
    gpu = create(flags);
    dawnInstances.set(key, gpu);
  }
  return gpu;
}

/** Open the best adapter and a device with the features the kernels can use. */
export async function createGpuDevice(options: GpuDeviceOptions = {}): Promise<GpuContext> {
  const { create } = await loadWebGpu();
  let adapter: GPUAdapter | null = null;
  let gpu: GPU;
  try {
    gpu = dawnInstance(create, options.dawnFlags ?? DEFAULT_DAWN_FLAGS);
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (cause) {
    throw new BackendUnavailableError('WebGPU adapter request failed', 'Update the GPU driver (Vulkan/Metal/D3D12), or choose the CPU backend.', { cause });
  }
  if (!adapter) {
    throw new BackendUnavailableError(
      'no WebGPU adapter found',
      'Install a Vulkan driver (on Linux without a GPU: Mesa lavapipe >= 24), or choose the CPU backend.',
    );
  }
  const has = (f: string) => adapter!.features.has(f);
  const features: GpuFeatures = {
    f16: (options.allowF16 ?? true) && has('shader-f16'),
    subgroups: (options.allowSubgroups ?? true) && has('subgroups'),
    timestamps: (options.timestamps ?? false) && has('timestamp-query'),
  };
  const requiredFeatures: string[] = [];
  if (features.f16) requiredFeatures.push('shader-f16');
  if (features.subgroups) requiredFeatures.push('subgroups');
  if (features.timestamps) requiredFeatures.push('timestamp-query');
  const al = adapter.limits;
  const limits = {
    maxStorageBufferBindingSize: al.maxStorageBufferBindingSize,
    maxBufferSize: al.maxBufferSize,
    maxComputeWorkgroupStorageSize: al.maxComputeWorkgroupStorageSize,
    maxComputeWorkgroupsPerDimension: al.maxComputeWorkgroupsPerDimension,
    maxStorageBuffersPerShaderStage: al.maxStorageBuffersPerShaderStage,
  };
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({
      requiredFeatures: requiredFeatures as GPUFeatureName[],
      requiredLimits: {
        ...limits,
        maxComputeInvocationsPerWorkgroup: Math.min(256, al.maxComputeInvocationsPerWorkgroup),
        maxComputeWorkgroupSizeX: Math.min(256, al.maxComputeWorkgroupSizeX),
      },
    });
  } catch (cause) {
    throw new BackendUnavailableError('WebGPU device creation failed', 'Update the GPU driver, or choose the CPU backend.', { cause });
  }
  const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number };
  let failure: Error | undefined;
  device.lost.then((l) => {
    if (l.reason !== 'destroyed') {
      failure ??= new BackendUnavailableError(`GPU device lost: ${l.message}`, 'The GPU driver reset or ran out of memory; reload the model or choose the CPU backend.');
    }
  });
  device.addEventListener?.('uncapturederror', (ev: Event) => {
    const e = (ev as GPUUncapturedErrorEvent).error;
    failure ??= new BackendUnavailableError(`GPU error: ${e.message}`, 'This is a bug in Cachet\'s WebGPU backend; choose the CPU backend and report it.');
  });
  let destroyed = false;
  const adapterName = info.description || info.device || info.vendor || 'unknown adapter';
  const software = (info as { isFallbackAdapter?: boolean }).isFallbackAdapter === true || /llvmpipe|lavapipe|swiftshader|warp|software/i.test(`${adapterName} ${info.architecture ?? ''}`);
  return {
    // The GPU instance must stay reachable (see dawnInstance): if it is garbage-collected, Dawn
    // tears it down and pending mapAsync/popErrorScope promises never settle or the process aborts.
    instance: gpu!,
    adapter,
    device,
    adapterName,
    software,
    features,
    subgroupMinSize: info.subgroupMinSize ?? 0,
    limits,
    check() {
      if (failure) throw failure;
      if (destroyed) throw new BackendUnavailableError('GPU device already disposed', 'Create a new backend.');
    },
    destroy() {
      destroyed = true;
      device.destroy();
    },
  };
}

/**
 * Run fn under validation + out-of-memory error scopes; a captured error becomes a typed error.
 * Used around allocation and pipeline creation, where errors must surface at the call site.
 */
export async function withErrorScope<T>(device: GPUDevice, what: string, fn: () => T): Promise<T> {
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let value: T | undefined;
  let thrown: unknown;
  try {
    value = fn();
  } catch (e) {
    thrown = e;
  }
  const validation = await device.popErrorScope();
  const oom = await device.popErrorScope();
  if (thrown) throw thrown;
  if (oom) throw new OutOfMemoryError(`GPU out of memory while ${what}: ${oom.message}`, 'Use a smaller model or a shorter context (fewer KV slots), or choose the CPU backend.');
  if (validation) throw new BackendUnavailableError(`GPU validation error while ${what}: ${validation.message}`, "This is a bug in Cachet's WebGPU backend; choose the CPU backend and report it.");
  return value as T;
}
