// Small helpers for GPU buffers: create from host data, uniform structs, read back.

import { BufferUsage, MapMode } from './device';

export const STORAGE = BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC;

/** Storage buffer holding `data` (padded to 4 bytes; at least 4 bytes). */
export function bufferFrom(device: GPUDevice, data: ArrayBufferView, label?: string, usage = STORAGE): GPUBuffer {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const size = Math.max(4, Math.ceil(bytes.byteLength / 4) * 4);
  const buf = device.createBuffer({ size, usage, mappedAtCreation: true, label });
  new Uint8Array(buf.getMappedRange()).set(bytes);
  buf.unmap();
  return buf;
}

export function emptyBuffer(device: GPUDevice, bytes: number, label?: string, usage = STORAGE): GPUBuffer {
  return device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 16) * 16), usage, label });
}

/** A uniform buffer from 32-bit fields: integers as u32 unless listed in `floats`. */
export function uniformFrom(device: GPUDevice, fields: number[], floats: number[] = [], label?: string): GPUBuffer {
  const data = uniformBytes(fields, floats);
  return bufferFrom(device, data, label, BufferUsage.UNIFORM | BufferUsage.COPY_DST);
}

export function uniformBytes(fields: number[], floats: number[] = []): Uint32Array {
  const n = Math.max(4, Math.ceil(fields.length / 4) * 4);
  const u = new Uint32Array(n);
  const f = new Float32Array(u.buffer);
  fields.forEach((v, i) => {
    if (floats.includes(i)) f[i] = v;
    else u[i] = v >>> 0;
  });
  return u;
}

/** Copies `bytes` of `src` (from `offset`) to a staging buffer and maps it. */
export async function readBuffer(device: GPUDevice, src: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
  const size = Math.ceil(bytes / 4) * 4;
  const staging = device.createBuffer({ size, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(src, offset, staging, 0, size);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(MapMode.READ);
  const out = staging.getMappedRange().slice(0, bytes);
  staging.unmap();
  staging.destroy();
  return out;
}

/** Splits a 1-D workgroup count over x and y (each dimension is limited to 65535). */
export function grid(count: number, maxPerDim = 65535): [number, number] {
  if (count <= maxPerDim) return [Math.max(1, count), 1];
  const y = Math.ceil(count / maxPerDim);
  return [Math.ceil(count / y), y];
}
