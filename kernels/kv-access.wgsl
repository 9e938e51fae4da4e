// Access to one layer's K and V cache buffers, [slot][kv_head][head_dim]; f16 pairs packed in u32
// when KV_F16, else f32. Index arguments count pairs of elements (element index / 2).

//#if KV_F16
@group(1) @binding(0) var<storage, read_write> KC: array<u32>;
@group(1) @binding(1) var<storage, read_write> VC: array<u32>;
fn k_load2(w: u32) -> vec2<f32> { return unpack2x16float(KC[w]); }
fn v_load2(w: u32) -> vec2<f32> { return unpack2x16float(VC[w]); }
fn k_store2(w: u32, v: vec2<f32>) { KC[w] = pack2x16float(v); }
fn v_store2(w: u32, v: vec2<f32>) { VC[w] = pack2x16float(v); }
//#else
@group(1) @binding(0) var<storage, read_write> KC: array<f32>;
@group(1) @binding(1) var<storage, read_write> VC: array<f32>;
fn k_load2(w: u32) -> vec2<f32> { return vec2<f32>(KC[2u * w], KC[2u * w + 1u]); }
fn v_load2(w: u32) -> vec2<f32> { return vec2<f32>(VC[2u * w], VC[2u * w + 1u]); }
fn k_store2(w: u32, v: vec2<f32>) { KC[2u * w] = v.x; KC[2u * w + 1u] = v.y; }
fn v_store2(w: u32, v: vec2<f32>) { VC[2u * w] = v.x; VC[2u * w + 1u] = v.y; }
//#endif
fn touch_kv() { _ = &KC; _ = &VC; }
