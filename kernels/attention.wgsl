// Causal attention over a slot-indexed KV cache, flash style (online softmax), split-K:
// attn_partial: workgroup (split s, head h, query i) covers keys [s*chunk, (s+1)*chunk) of the
//   context CTX, clipped to the causal limit n_past + i + 1, in tiles of $WG keys; it writes
//   (max, sum, unnormalized output) to OP. attn_combine merges the splits into O [n, heads*dim].
// Prefill runs many queries with few splits, decode one query with many (flash decoding).
// GQA: query head h reads KV head h / (heads / kv_heads).

struct AttnParams { heads: u32, kv_heads: u32, head_dim: u32, chunk: u32, splits: u32, scale: f32, pad0: u32, pad1: u32 }
struct Step { n_tokens: u32, n_past: u32, n_ctx: u32, pad: u32 }

@group(0) @binding(0) var<storage, read> Q: array<f32>;            // [n, heads, head_dim]
@group(0) @binding(1) var<storage, read> CTX: array<i32>;          // slots of the whole context
@group(0) @binding(2) var<storage, read_write> OP: array<f32>;     // [n, heads, splits, 2 + head_dim]
@group(0) @binding(3) var<uniform> p: AttnParams;
@group(0) @binding(4) var<uniform> st: Step;
@group(0) @binding(5) var<storage, read_write> O: array<f32>;      // [n, heads * head_dim]

const NEG = -3.0e38;
const MAX_PAIRS = 128u;              // head_dim <= 256
var<workgroup> qs: array<f32, 256>;
var<workgroup> ps: array<f32, $WG>;
var<workgroup> slots: array<u32, $WG>;

// Every entry point references every binding, so all share one binding set (auto layouts drop
// unused bindings otherwise).
fn touch_bindings() { _ = &Q; _ = &CTX; _ = &OP; _ = &p; _ = &st; _ = &O; touch_kv(); }

@compute @workgroup_size($WG)
fn attn_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32
//#if SUBGROUPS
          , @builtin(subgroup_size) sgs: u32, @builtin(subgroup_invocation_id) sgl: u32
//#endif
          ) {
  touch_bindings();
//#if SUBGROUPS
  sg_size = sgs; sg_lane = sgl;
//#endif
  let s = wid.x;
  let h = wid.y;
  let i = wid.z;
  let dim = p.head_dim;
  let kvh = h / (p.heads / p.kv_heads);
  let limit = st.n_past + i + 1u;
  let j0 = s * p.chunk;
  let j1 = min(j0 + p.chunk, limit);
  for (var d = lid; d < dim; d += $WG) { qs[d] = Q[(i * p.heads + h) * dim + d] * p.scale; }
  workgroupBarrier();
  var m = NEG;
  var l = 0.0;
  var acc: array<vec2<f32>, 2>;     // pairs lid and lid + $WG (head_dim <= 4 * $WG)
  acc[0] = vec2<f32>(0.0); acc[1] = vec2<f32>(0.0);
  let pairs = dim / 2u;
  for (var t0 = j0; t0 < j1; t0 += $WG) {
    let j = t0 + lid;
    var sc = NEG;
    if (j < j1) {
      let slot = u32(CTX[j]);
      slots[lid] = slot;
      let kb = ((slot * p.kv_heads + kvh) * dim) / 2u;
      var dv = 0.0;
      for (var w = 0u; w < pairs; w++) {
        let kv = k_load2(kb + w);
        dv += qs[2u * w] * kv.x + qs[2u * w + 1u] * kv.y;
      }
      sc = dv;
    }
    let m_new = max(m, reduce_max(sc, lid));
    let pj = select(0.0, exp(sc - m_new), j < j1);
    ps[lid] = pj;
    let corr = exp(m - m_new);
    l = l * corr + reduce_sum(pj, lid);   // its barriers also publish ps and slots
    m = m_new;
    let cnt = min($WG, j1 - t0);
    for (var r = 0u; r < 2u; r++) {
      let w = lid + r * $WG;
      if (w < pairs) {
        var a = acc[r] * corr;
        for (var t = 0u; t < cnt; t++) {
          a += ps[t] * v_load2(((slots[t] * p.kv_heads + kvh) * dim) / 2u + w);
        }
        acc[r] = a;
      }
    }
    workgroupBarrier();
  }
  let ob = ((i * p.heads + h) * p.splits + s) * (dim + 2u);
  if (lid == 0u) { OP[ob] = m; OP[ob + 1u] = l; }
  for (var r = 0u; r < 2u; r++) {
    let w = lid + r * $WG;
    if (w < pairs) { OP[ob + 2u + 2u * w] = acc[r].x; OP[ob + 3u + 2u * w] = acc[r].y; }
  }
}

@compute @workgroup_size($WG)
fn attn_combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  touch_bindings();
  let h = wid.x;
  let i = wid.y;
  let dim = p.head_dim;
  let base = (i * p.heads + h) * p.splits;
  var mx = NEG;
  for (var s = 0u; s < p.splits; s++) { mx = max(mx, OP[(base + s) * (dim + 2u)]); }
  var l = 0.0;
  for (var s = 0u; s < p.splits; s++) {
    let o = (base + s) * (dim + 2u);
    l += OP[o + 1u] * exp(OP[o] - mx);
  }
  for (var d = lid; d < dim; d += $WG) {
    var a = 0.0;
    for (var s = 0u; s < p.splits; s++) {
      let o = (base + s) * (dim + 2u);
      a += OP[o + 2u + d] * exp(OP[o] - mx);
    }
    O[(i * p.heads + h) * dim + d] = a / l;
  }
}
