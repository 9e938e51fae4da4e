// Shared setup for kernel tests: one device per test file (lavapipe on CI), a Pipelines instance,
// helpers to run one dispatch and read buffers back. Tests skip when no adapter exists.

import { createGpuDevice, type GpuContext } from '../../engine/backend/webgpu/device';
import { loadKernelSources } from '../../engine/backend/webgpu/kernel-sources';
import { Pipelines } from '../../engine/backend/webgpu/pipelines';
import { bufferFrom, readBuffer, uniformFrom } from '../../engine/backend/webgpu/buffers';
import { f16ToF32, f32ToF16 } from '../../engine/quant';

export interface Harness {
  gpu: GpuContext;
  pipes: Pipelines;
  /** Pipelines with the opposite subgroup choice, to test the fallback path too. */
  altPipes: Pipelines;
}

/** Creates the harness, or returns a skip reason. */
export async function openHarness(opts: { kvF16?: boolean } = {}): Promise<Harness | string> {
  let gpu: GpuContext;
  try {
    gpu = await createGpuDevice();
  } catch (e) {
    return `no WebGPU adapter (${(e as Error).message}); install Mesa >= 24 lavapipe to run GPU kernel tests`;
  }
  const sources = await loadKernelSources();
  const kvF16 = opts.kvF16 ?? gpu.features.f16;
  return {
    gpu,
    pipes: new Pipelines(gpu, sources, { kvF16, subgroups: gpu.features.subgroups }),
    altPipes: new Pipelines(gpu, sources, { kvF16: !kvF16, subgroups: false }),
  };
}

export function buf(h: Harness, data: ArrayBufferView): GPUBuffer {
  return bufferFrom(h.gpu.device, data);
}

export function uni(h: Harness, fields: number[], floats: number[] = []): GPUBuffer {
  return uniformFrom(h.gpu.device, fields, floats);
}

export async function run(h: Harness, pipeline: GPUComputePipeline, groups: GPUBindGroup[], x: number, y = 1, z = 1): Promise<void> {
  const d = h.gpu.device;
  const enc = d.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  groups.forEach((g, i) => pass.setBindGroup(i, g));
  pass.dispatchWorkgroups(x, y, z);
  pass.end();
  d.queue.submit([enc.finish()]);
  await d.queue.onSubmittedWorkDone();
  h.gpu.check();
}

export async function readF32(h: Harness, b: GPUBuffer, n: number): Promise<Float32Array> {
  return new Float32Array(await readBuffer(h.gpu.device, b, n * 4));
}
export async function readU32(h: Harness, b: GPUBuffer, n: number): Promise<Uint32Array> {
  return new Uint32Array(await readBuffer(h.gpu.device, b, n * 4));
}

/** Deterministic uniform(-1, 1) numbers. */
export function randoms(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

/** max |a - b| / (max |b| + floor): a relative error against the reference's scale. */
export function relError(a: Float32Array, b: Float32Array | Float64Array, floor = 1e-6): number {
  let maxDiff = 0;
  let maxRef = floor;
  for (let i = 0; i < b.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
    maxRef = Math.max(maxRef, Math.abs(b[i]!));
  }
  return Number.isNaN(maxDiff) ? Infinity : maxDiff / maxRef;
}

/** Host image of a KV cache buffer: f16 pairs packed in u32 (as the kernels store them) or f32. */
export function packKv(values: Float32Array, f16: boolean): Uint32Array | Float32Array {
  if (!f16) return values;
  const out = new Uint32Array(values.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = (f32ToF16(values[2 * i]!) | (f32ToF16(values[2 * i + 1]!) << 16)) >>> 0;
  return out;
}

export async function readKv(h: Harness, b: GPUBuffer, elements: number, f16: boolean): Promise<Float32Array> {
  if (!f16) return readF32(h, b, elements);
  const u = await readU32(h, b, elements / 2);
  const out = new Float32Array(elements);
  for (let i = 0; i < u.length; i++) {
    out[2 * i] = f16ToF32(u[i]! & 0xffff);
    out[2 * i + 1] = f16ToF32(u[i]! >>> 16);
  }
  return out;
}

/** Values as stored in an f16 cache (round trip), or unchanged for f32. */
export function kvRound(values: Float32Array, f16: boolean): Float32Array {
  return f16 ? Float32Array.from(values, (v) => f16ToF32(f32ToF16(v))) : values;
}
