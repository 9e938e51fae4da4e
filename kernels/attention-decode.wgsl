// Flash decoding for few queries (decode and short drafts), specialised for one head layout:
// $G query heads per KV head and head dim $HD are compile-time constants, so the per-head loops
// unroll and q slices, scores and accumulators live in registers.
//
// attn_split: one workgroup of 128 threads per (split s, KV head, query i) covers at most 256 keys
//   [s*chunk, (s+1)*chunk) clipped to the causal limit. Three phases, no online rescaling:
//   1. scores: 8 lanes per key, 16 keys per round; lane l reads K words l, l+8, ... (each 8-lane
//      load is one 32-byte sector) and keeps the matching q dims of all G heads in registers;
//   2. softmax statistics per head (max, then sum of exp) over the split's scores;
//   3. values: thread t owns pair t % (HD/2) of the head dim for all G heads; key groups of
//      threads split the keys and are summed through shared memory at the end.
//   Writes the same partials as attention.wgsl's attn_partial: (max, sum, unnormalised output).
// attn_merge: one workgroup per (query head, query) merges the splits, a thread per dim (two
//   dims per thread for head_dim 256).

struct AttnParams { heads: u32, kv_heads: u32, head_dim: u32, chunk: u32, splits: u32, scale: f32, pad0: u32, pad1: u32 }
struct Step { n_tokens: u32, n_past: u32, n_ctx: u32, pad: u32 }

@group(0) @binding(0) var<storage, read> Q: array<f32>;            // [n, heads, head_dim]
@group(0) @binding(1) var<storage, read> CTX: array<i32>;          // slots of the whole context
@group(0) @binding(2) var<storage, read_write> OP: array<f32>;     // [n, heads, splits, 2 + head_dim]
@group(0) @binding(3) var<uniform> p: AttnParams;
@group(0) @binding(4) var<uniform> st: Step;
@group(0) @binding(5) var<storage, read_write> O: array<f32>;      // [n, heads * head_dim]

const G = $Gu;
const HD = $HDu;
const KMAX = 256u;                 // keys per split at most (the host keeps chunk <= KMAX)
const WGS = 128u;
const WPL = HD / 16u;              // K words (f16 pairs) per lane per key: 8 lanes x WPL x 2 = HD
const PAIRS = HD / 2u;
const KG = WGS / PAIRS;            // key groups in the value pass
const NEG = -3.0e38;

var<workgroup> qsh: array<f32, $GHD>;          // [G][HD], scaled
var<workgroup> sc: array<f32, $GKMAX>;         // [G][KMAX]: scores, then exp(score - max)
var<workgroup> kslot: array<u32, 256>;
var<workgroup> stat: array<f32, $GSTAT>;       // [16 partials][G] reductions
var<workgroup> vsum: array<vec2<f32>, $GVS>;   // [KG][G][PAIRS]

fn touch_bindings() { _ = &Q; _ = &CTX; _ = &OP; _ = &p; _ = &st; _ = &O; touch_kv(); }

@compute @workgroup_size(128)
fn attn_split(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32
//#if SUBGROUPS
          , @builtin(subgroup_size) sgs_in: u32
//#endif
          ) {
  touch_bindings();
//#if SUBGROUPS
  let sgs = sgs_in;
//#else
  let sgs = 1u;
//#endif
  let s = wid.x;
  let kvh = wid.y;
  let i = wid.z;
  let j0 = s * p.chunk;
  let limit = st.n_past + i + 1u;
  let j1 = min(j0 + p.chunk, limit);
  let n = select(0u, j1 - j0, j1 > j0);
  for (var e = lid; e < G * HD; e += WGS) {
    qsh[e] = Q[(i * p.heads + kvh * G) * HD + e] * p.scale;   // heads kvh*G .. +G-1 are contiguous
  }
  for (var t = lid; t < n; t += WGS) { kslot[t] = u32(CTX[j0 + t]); }
  workgroupBarrier();

  // 1. scores
  let lane = lid & 7u;
  var qr: array<f32, $GWPL2>;                  // [G][WPL][2]
  for (var g = 0u; g < G; g++) {
    for (var w = 0u; w < WPL; w++) {
      let d = 2u * (lane + 8u * w);
      qr[(g * WPL + w) * 2u] = qsh[g * HD + d];
      qr[(g * WPL + w) * 2u + 1u] = qsh[g * HD + d + 1u];
    }
  }
  for (var r0 = 0u; r0 < n; r0 += 16u) {
    let kt = r0 + lid / 8u;
    let valid = kt < n;
    var part: array<f32, $G>;
    for (var g = 0u; g < G; g++) { part[g] = 0.0; }
    if (valid) {
      let kb = (kslot[kt] * p.kv_heads + kvh) * PAIRS + lane;
      for (var w = 0u; w < WPL; w++) {
        let kv = k_load2(kb + 8u * w);
        for (var g = 0u; g < G; g++) {
          part[g] += qr[(g * WPL + w) * 2u] * kv.x + qr[(g * WPL + w) * 2u + 1u] * kv.y;
        }
      }
    }
    for (var g = 0u; g < G; g++) {
      let v = sum8(part[g], lid, sgs);
      if (lane == 0u && valid) { sc[g * KMAX + kt] = v; }
    }
  }
  workgroupBarrier();

  // 2. per-head max and sum of exp; thread t covers keys t and t + 128
  var mx: array<f32, $G>;
  for (var g = 0u; g < G; g++) {
    var m = NEG;
    for (var t = lid; t < n; t += WGS) { m = max(m, sc[g * KMAX + t]); }
    mx[g] = m;
  }
  wg_reduce_g(&mx, lid, sgs, true);
  var sm: array<f32, $G>;
  for (var g = 0u; g < G; g++) {
    var a = 0.0;
    for (var t = lid; t < n; t += WGS) {
      let e = exp(sc[g * KMAX + t] - mx[g]);
      sc[g * KMAX + t] = e;
      a += e;
    }
    sm[g] = a;
  }
  wg_reduce_g(&sm, lid, sgs, false);   // its barriers also publish the exp values

  // 3. values
  let w = lid % PAIRS;
  let kg = lid / PAIRS;
  var acc: array<vec2<f32>, $G>;
  for (var g = 0u; g < G; g++) { acc[g] = vec2<f32>(0.0); }
  // four keys per iteration: four independent loads in flight (a one-load loop was latency-bound)
  var t = kg;
  for (; t + 3u * KG < n; t += 4u * KG) {
    let v0 = v_load2((kslot[t] * p.kv_heads + kvh) * PAIRS + w);
    let v1 = v_load2((kslot[t + KG] * p.kv_heads + kvh) * PAIRS + w);
    let v2 = v_load2((kslot[t + 2u * KG] * p.kv_heads + kvh) * PAIRS + w);
    let v3 = v_load2((kslot[t + 3u * KG] * p.kv_heads + kvh) * PAIRS + w);
    for (var g = 0u; g < G; g++) {
      let b = g * KMAX + t;
      acc[g] += sc[b] * v0 + sc[b + KG] * v1 + sc[b + 2u * KG] * v2 + sc[b + 3u * KG] * v3;
    }
  }
  for (; t < n; t += KG) {
    let v = v_load2((kslot[t] * p.kv_heads + kvh) * PAIRS + w);
    for (var g = 0u; g < G; g++) { acc[g] += sc[g * KMAX + t] * v; }
  }
  for (var g = 0u; g < G; g++) { vsum[(kg * G + g) * PAIRS + w] = acc[g]; }
  workgroupBarrier();
  if (kg == 0u) {
    for (var g = 0u; g < G; g++) {
      var a = vsum[g * PAIRS + w];
      for (var k = 1u; k < KG; k++) { a += vsum[(k * G + g) * PAIRS + w]; }
      let ob = ((i * p.heads + kvh * G + g) * p.splits + s) * (HD + 2u);
      if (w == 0u) { OP[ob] = mx[g]; OP[ob + 1u] = sm[g]; }
      OP[ob + 2u + 2u * w] = a.x;
      OP[ob + 3u + 2u * w] = a.y;
    }
  }
}

// Workgroup-wide max (is_max) or sum of G values per thread; every thread gets the G results.
fn wg_reduce_g(v: ptr<function, array<f32, $G>>, lid: u32, sgs: u32, is_max: bool) {
  let nsg = select(WGS, WGS / sgs, sgs >= 8u);
  let slot = select(lid, lid / sgs, sgs >= 8u);
  for (var g = 0u; g < G; g++) {
    var x = (*v)[g];
//#if SUBGROUPS
    if (sgs >= 8u) { x = select(subgroupAdd(x), subgroupMax(x), is_max); }
//#endif
    if (sgs < 8u || lid % sgs == 0u) { stat[slot * G + g] = x; }
  }
  workgroupBarrier();
  for (var g = 0u; g < G; g++) {
    var r = select(0.0, NEG, is_max);
    for (var k = 0u; k < nsg; k++) {
      let o = stat[k * G + g];
      r = select(r + o, max(r, o), is_max);
    }
    (*v)[g] = r;
  }
  workgroupBarrier();
}

var<workgroup> wsplit: array<f32, 256>;   // exp(m_s - M) per split
var<workgroup> lsum: array<f32, 128>;

@compute @workgroup_size(128)
fn attn_merge(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  touch_bindings();
  let h = wid.x;
  let i = wid.y;
  let base = (i * p.heads + h) * p.splits;
  // global max over the splits' maxima (empty splits carry NEG and weigh 0)
  var m = NEG;
  for (var s = lid; s < p.splits; s += WGS) { m = max(m, OP[(base + s) * (HD + 2u)]); }
  lsum[lid] = m;
  workgroupBarrier();
  for (var o = 64u; o > 0u; o >>= 1u) {
    if (lid < o) { lsum[lid] = max(lsum[lid], lsum[lid + o]); }
    workgroupBarrier();
  }
  let M = lsum[0];
  workgroupBarrier();
  var l = 0.0;
  for (var s = lid; s < p.splits; s += WGS) {
    let o = (base + s) * (HD + 2u);
    let wgt = exp(OP[o] - M);
    wsplit[s] = wgt;
    l += wgt * OP[o + 1u];
  }
  lsum[lid] = l;
  workgroupBarrier();
  for (var o = 64u; o > 0u; o >>= 1u) {
    if (lid < o) { lsum[lid] += lsum[lid + o]; }
    workgroupBarrier();
  }
  let L = lsum[0];
  let stride = HD + 2u;
  for (var d = lid; d < HD; d += WGS) {
    // four splits per iteration: independent loads in flight
    var a = vec4<f32>(0.0);
    var s = 0u;
    for (; s + 3u < p.splits; s += 4u) {
      let o = (base + s) * stride + 2u + d;
      a += vec4<f32>(wsplit[s], wsplit[s + 1u], wsplit[s + 2u], wsplit[s + 3u]) * vec4<f32>(OP[o], OP[o + stride], OP[o + 2u * stride], OP[o + 3u * stride]);
    }
    var r = a.x + a.y + a.z + a.w;
    for (; s < p.splits; s++) { r += wsplit[s] * OP[(base + s) * stride + 2u + d]; }
    O[(i * p.heads + h) * HD + d] = r / L;
  }
}
