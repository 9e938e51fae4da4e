// KV cache maintenance for one layer (the layer's K and V buffers are bind group 1):
// copy_slots: slot SRC[i] -> DST[i]; gather_slots: F32 out [i][K|V][kv_heads*head_dim];
// scatter_slots: the inverse. One thread per element pair.

struct KvParams { count: u32, row: u32, out_offset: u32, pad: u32 }   // row = kv_heads * head_dim

@group(0) @binding(0) var<storage, read> SRC: array<i32>;
@group(0) @binding(1) var<storage, read> DST: array<i32>;
@group(0) @binding(2) var<storage, read_write> F32: array<f32>;
@group(0) @binding(3) var<uniform> p: KvParams;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * 64u; }

// Every entry point references every binding, so all share one binding set (auto layouts drop
// unused bindings otherwise).
fn touch_bindings() { _ = &SRC; _ = &DST; _ = &F32; _ = &p; touch_kv(); }

@compute @workgroup_size(64)
fn copy_slots(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  touch_bindings();
  let t = index(gid, nwg);
  let half = p.row / 2u;
  let i = t / half;
  if (i >= p.count) { return; }
  let w = t % half;
  let s = u32(SRC[i]) * half + w;
  let d = u32(DST[i]) * half + w;
  k_store2(d, k_load2(s));
  v_store2(d, v_load2(s));
}

@compute @workgroup_size(64)
fn gather_slots(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  touch_bindings();
  let t = index(gid, nwg);
  let half = p.row / 2u;
  let i = t / half;
  if (i >= p.count) { return; }
  let w = t % half;
  let s = u32(SRC[i]) * half + w;
  let o = p.out_offset + i * 2u * p.row + 2u * w;
  let k = k_load2(s);
  let v = v_load2(s);
  F32[o] = k.x; F32[o + 1u] = k.y;
  F32[o + p.row] = v.x; F32[o + p.row + 1u] = v.y;
}

@compute @workgroup_size(64)
fn scatter_slots(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  touch_bindings();
  let t = index(gid, nwg);
  let half = p.row / 2u;
  let i = t / half;
  if (i >= p.count) { return; }
  let w = t % half;
  let d = u32(DST[i]) * half + w;
  let o = p.out_offset + i * 2u * p.row + 2u * w;
  k_store2(d, vec2<f32>(F32[o], F32[o + 1u]));
  v_store2(d, vec2<f32>(F32[o + p.row], F32[o + p.row + 1u]));
}
