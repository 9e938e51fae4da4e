// Static imports of every kernel file, inlined as text by esbuild (loader '.wgsl': 'text').
// Only engine/backend/webgpu/kernel-sources.ts imports this, lazily.
/// <reference path="./wgsl.d.ts" />
import reduce from './reduce.wgsl';
import dequant from './dequant.wgsl';
import kvAccess from './kv-access.wgsl';
import matmul from './matmul.wgsl';
import norm from './norm.wgsl';
import rope from './rope.wgsl';
import elementwise from './elementwise.wgsl';
import attention from './attention.wgsl';
import argmax from './argmax.wgsl';
import kv from './kv.wgsl';
import matvecFused from './matvec-fused.wgsl';
import attentionDecode from './attention-decode.wgsl';

export const KERNEL_SOURCES = { reduce, dequant, 'kv-access': kvAccess, matmul, norm, rope, elementwise, attention, argmax, kv, 'matvec-fused': matvecFused, 'attention-decode': attentionDecode };
