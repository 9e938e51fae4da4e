// Rotary position embedding. cos/sin come from a table the host computes in f64 per step
// (CS[token][pair] = (cos, sin) of position * theta_pair), so scaling variants live in one place.
// 'normal' rotates dims (2j, 2j+1), 'neox' rotates (j, j + n_rot/2); dims >= n_rot pass through.
// rope_q: Q in place. rope_store_kv: rotate K, then write K and V of each new token into the cache
// slot CTX[n_past + i]. rope_shift: rotate cached keys of listed slots by a position delta.

struct RopeParams { heads: u32, head_dim: u32, n_rot: u32, neox: u32, count: u32, pad0: u32, pad1: u32, pad2: u32 }
struct Step { n_tokens: u32, n_past: u32, n_ctx: u32, pad: u32 }

@group(0) @binding(0) var<storage, read_write> Q: array<f32>;      // rope_q: [n, heads, head_dim]
@group(0) @binding(1) var<storage, read> CS: array<vec2<f32>>;      // [row][n_rot / 2]
@group(0) @binding(2) var<uniform> p: RopeParams;
@group(0) @binding(3) var<uniform> st: Step;
@group(0) @binding(4) var<storage, read> KIN: array<f32>;          // [n, kv_heads, head_dim]
@group(0) @binding(5) var<storage, read> VIN: array<f32>;
@group(0) @binding(6) var<storage, read> SLOTS: array<i32>;        // CTX (store) or listed slots (shift)

// (first, second) element of pair j within a head, and the table index
fn pair_dims(j: u32) -> vec2<u32> {
  if (p.neox != 0u) { return vec2<u32>(j, j + p.n_rot / 2u); }
  return vec2<u32>(2u * j, 2u * j + 1u);
}
fn rotate(a: f32, b: f32, cs: vec2<f32>) -> vec2<f32> {
  return vec2<f32>(a * cs.x - b * cs.y, a * cs.y + b * cs.x);
}

// Every entry point references every binding, so all share one binding set (auto layouts drop
// unused bindings otherwise).
fn touch_bindings() { _ = &Q; _ = &CS; _ = &p; _ = &st; _ = &KIN; _ = &VIN; _ = &SLOTS; touch_kv(); }

@compute @workgroup_size(64)
fn rope_q(@builtin(global_invocation_id) gid: vec3<u32>) {
  touch_bindings();
  let half = p.head_dim / 2u;                  // threads per head (pairs incl. pass-through)
  let t = gid.x;
  let i = t / (p.heads * half);
  if (i >= st.n_tokens) { return; }
  let h = (t / half) % p.heads;
  let j = t % half;
  if (j >= p.n_rot / 2u) { return; }
  let d = pair_dims(j);
  let base = (i * p.heads + h) * p.head_dim;
  let r = rotate(Q[base + d.x], Q[base + d.y], CS[i * (p.n_rot / 2u) + j]);
  Q[base + d.x] = r.x;
  Q[base + d.y] = r.y;
}

// rotated value of element d of a head stored at KIN[base..]
fn k_rotated(base: u32, d: u32, i: u32) -> f32 {
  if (d >= p.n_rot) { return KIN[base + d]; }
  let hr = p.n_rot / 2u;
  var j: u32; var first: bool;
  if (p.neox != 0u) { first = d < hr; j = select(d - hr, d, first); }
  else { first = (d & 1u) == 0u; j = d / 2u; }
  let dd = pair_dims(j);
  let r = rotate(KIN[base + dd.x], KIN[base + dd.y], CS[i * hr + j]);
  return select(r.y, r.x, first);
}

@compute @workgroup_size(64)
fn rope_store_kv(@builtin(global_invocation_id) gid: vec3<u32>) {
  touch_bindings();
  let half = p.head_dim / 2u;                  // one thread per element pair (2w, 2w + 1)
  let t = gid.x;
  let i = t / (p.heads * half);
  if (i >= st.n_tokens) { return; }
  let h = (t / half) % p.heads;
  let w = t % half;
  let base = (i * p.heads + h) * p.head_dim;
  let slot = u32(SLOTS[st.n_past + i]);
  let dst = ((slot * p.heads + h) * p.head_dim) / 2u + w;
  k_store2(dst, vec2<f32>(k_rotated(base, 2u * w, i), k_rotated(base, 2u * w + 1u, i)));
  v_store2(dst, vec2<f32>(VIN[base + 2u * w], VIN[base + 2u * w + 1u]));
}

// In place on the cache: one thread per two adjacent pairs (2q, 2q + 1), so with packed f16 no two
// threads touch the same word.
@compute @workgroup_size(64)
fn rope_shift(@builtin(global_invocation_id) gid: vec3<u32>) {
  touch_bindings();
  let quarter = p.n_rot / 4u;
  let t = gid.x;
  let i = t / (p.heads * quarter);
  if (i >= p.count) { return; }
  let h = (t / quarter) % p.heads;
  let q = t % quarter;
  let slot = u32(SLOTS[i]);
  let base = ((slot * p.heads + h) * p.head_dim) / 2u;  // in pairs of elements
  let hr = p.n_rot / 2u;
  let c0 = CS[i * hr + 2u * q];
  let c1 = CS[i * hr + 2u * q + 1u];
  if (p.neox != 0u) {
    // pairs (2q, 2q+hr) and (2q+1, 2q+1+hr): words base+q and base+q+hr/2
    let a = k_load2(base + q);
    let b = k_load2(base + q + hr / 2u);
    let r0 = rotate(a.x, b.x, c0);
    let r1 = rotate(a.y, b.y, c1);
    k_store2(base + q, vec2<f32>(r0.x, r1.x));
    k_store2(base + q + hr / 2u, vec2<f32>(r0.y, r1.y));
  } else {
    // pairs (4q, 4q+1) and (4q+2, 4q+3): words base+2q and base+2q+1
    let a = k_load2(base + 2u * q);
    let b = k_load2(base + 2u * q + 1u);
    k_store2(base + 2u * q, rotate(a.x, a.y, c0));
    k_store2(base + 2u * q + 1u, rotate(b.x, b.y, c1));
  }
}

// rope_q and rope_store_kv in one dispatch (decode saves a dispatch per layer): threads
// [0, n * heads * head_dim / 2) rotate queries, the next n * kv_heads * head_dim / 2 store K and V.
// p.heads = query heads, p.count = kv heads here.
@compute @workgroup_size(64)
fn rope_qkv(@builtin(global_invocation_id) gid: vec3<u32>) {
  touch_bindings();
  let half = p.head_dim / 2u;
  let nq = st.n_tokens * p.heads * half;
  let t = gid.x;
  if (t < nq) {
    let i = t / (p.heads * half);
    let h = (t / half) % p.heads;
    let j = t % half;
    if (j >= p.n_rot / 2u) { return; }
    let d = pair_dims(j);
    let base = (i * p.heads + h) * p.head_dim;
    let r = rotate(Q[base + d.x], Q[base + d.y], CS[i * (p.n_rot / 2u) + j]);
    Q[base + d.x] = r.x;
    Q[base + d.y] = r.y;
    return;
  }
  let u = t - nq;
  let kvh = p.count;
  let i = u / (kvh * half);
  if (i >= st.n_tokens) { return; }
  let h = (u / half) % kvh;
  let w = u % half;
  let base = (i * kvh + h) * p.head_dim;
  let slot = u32(SLOTS[st.n_past + i]);
  let dst = ((slot * kvh + h) * p.head_dim) / 2u + w;
  k_store2(dst, vec2<f32>(k_rotated(base, 2u * w, i), k_rotated(base, 2u * w + 1u, i)));
  v_store2(dst, vec2<f32>(VIN[base + 2u * w], VIN[base + 2u * w + 1u]));
}
