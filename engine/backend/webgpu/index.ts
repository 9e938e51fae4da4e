// The WebGPU backend's public surface.
export { createWebGpuBackend, WebGpuBackend, type WebGpuBackendOptions } from './webgpu-backend';
export { createGpuDevice, DEFAULT_DAWN_FLAGS, type GpuContext, type GpuDeviceOptions, type GpuFeatures } from './device';
