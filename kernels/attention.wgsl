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

// Prefill variant: one workgroup per (block of 16 queries, query head). Keys stream through shared
// memory in tiles of 32 (K, then V in the same buffer), so each key is read once per query block
// instead of once per query. Online softmax per query row; writes O directly (no split-K).
// Needs head_dim <= 128 and $WG == 64. Rows of qb and kvt are padded to head_dim + 1 floats and
// sp rows to BK + 1: the 8 query rows (or 4 key rows) a subgroup reads at one dim then fall in
// different shared-memory banks instead of one (an 8-way conflict made this kernel ~30x slower).
const BQ = 16u;
const BK = 32u;
var<workgroup> qb: array<f32, 2064>;        // [BQ][head_dim + 1]
var<workgroup> kvt: array<f32, 4128>;       // [BK][head_dim + 1]: K tile, then V tile
var<workgroup> sp: array<f32, 528>;         // [BQ][BK + 1]: scores, then probabilities
const SPS = BK + 1u;
var<workgroup> row_m: array<f32, 16>;
var<workgroup> row_l: array<f32, 16>;
var<workgroup> row_c: array<f32, 16>;

fn load_tile(t0: u32, kv_end: u32, kvh: u32, is_v: bool, lid: u32) {
  let dim = p.head_dim;
  let pairs = dim / 2u;
  for (var w = lid; w < BK * pairs; w += $WG) {
    let key = w / pairs;
    let pr = w % pairs;
    let j = t0 + key;
    var v = vec2<f32>(0.0);
    if (j < kv_end) {
      let idx = ((u32(CTX[j]) * p.kv_heads + kvh) * dim) / 2u + pr;
      if (is_v) { v = v_load2(idx); } else { v = k_load2(idx); }
    }
    kvt[key * (dim + 1u) + 2u * pr] = v.x;
    kvt[key * (dim + 1u) + 2u * pr + 1u] = v.y;
  }
}

// Online softmax of query row r of a score tile in sp (scores -> probabilities), updating the
// row's running max and sum and leaving the rescale of earlier output in row_c[r].
fn softmax_tile_row(r: u32) {
  var mx = row_m[r];
  for (var kk = 0u; kk < BK; kk++) { mx = max(mx, sp[r * SPS + kk]); }
  var sum = 0.0;
  for (var kk = 0u; kk < BK; kk++) {
    let sc = sp[r * SPS + kk];
    let e = select(0.0, exp(sc - mx), sc > NEG);
    sp[r * SPS + kk] = e;
    sum += e;
  }
  let c = exp(row_m[r] - mx);
  row_c[r] = c;
  row_l[r] = row_l[r] * c + sum;
  row_m[r] = mx;
}

@compute @workgroup_size($WG)
fn attn_prefill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  touch_bindings();
  let q0 = wid.x * BQ;
  let h = wid.y;
  let dim = p.head_dim;
  let kvh = h / (p.heads / p.kv_heads);
  let n = st.n_tokens;
  let qs = dim + 1u;              // padded row stride of qb and kvt
  for (var e = lid; e < BQ * dim; e += $WG) {
    let qi = e / dim;
    var v = 0.0;
    if (q0 + qi < n) { v = Q[((q0 + qi) * p.heads + h) * dim + e % dim] * p.scale; }
    qb[qi * qs + e % dim] = v;
  }
  if (lid < BQ) { row_m[lid] = NEG; row_l[lid] = 0.0; }
  // keys visible to the block's last query
  let kv_end = st.n_past + min(q0 + BQ, n);
  let qi = lid / 4u;              // this thread's query row (scores and output)
  let sub = lid % 4u;
  let limit = st.n_past + q0 + qi + 1u;
  var acc: array<f32, 32>;        // dims sub + 4 * j
  for (var j = 0u; j < 32u; j++) { acc[j] = 0.0; }
  let dpt = dim / 4u;             // dims per thread
  for (var t0 = 0u; t0 < kv_end; t0 += BK) {
    workgroupBarrier();
    load_tile(t0, kv_end, kvh, false, lid);
    workgroupBarrier();
    // scores: keys sub + 4r of the tile for row qi
    for (var r = 0u; r < BK / 4u; r++) {
      let kk = sub + 4u * r;
      var s = 0.0;
      for (var d = 0u; d < dim; d++) { s += qb[qi * qs + d] * kvt[kk * qs + d]; }
      sp[qi * SPS + kk] = select(NEG, s, t0 + kk < limit);
    }
    workgroupBarrier();
    if (lid < BQ) { softmax_tile_row(lid); }
    workgroupBarrier();
    load_tile(t0, kv_end, kvh, true, lid);
    workgroupBarrier();
    let c = row_c[qi];
    for (var j = 0u; j < dpt; j++) {
      let d = sub + 4u * j;
      var a = acc[j] * c;
      for (var kk = 0u; kk < BK; kk++) { a += sp[qi * SPS + kk] * kvt[kk * qs + d]; }
      acc[j] = a;
    }
  }
  workgroupBarrier();
  if (q0 + qi < n) {
    let inv = 1.0 / row_l[qi];
    for (var j = 0u; j < dpt; j++) {
      O[((q0 + qi) * p.heads + h) * dim + sub + 4u * j] = acc[j] * inv;
    }
  }
}

// Prefill, register-tiled (preferred when head_dim % 32 == 0): one workgroup of 64 threads per
// (16 queries, query head). Per 32-key tile, S = Q K^T and O += P V are small matmuls: thread
// (tq = lid / 8, tk = lid % 8) scores queries 2tq, 2tq + 1 against keys tk + 8c (c < 4) and owns
// output dims 4(tk + 8c) .. +3 (c < head_dim / 32) of those two queries, so each shared-memory
// load feeds several independent FMAs (the one-dot-at-a-time attn_prefill was latency-bound:
// ~0.9 s per 512-token chunk at 4k context on an H200). Rows of the Q and K/V tiles are padded to
// head_dim / 4 + 1 vec4, so the eight key rows a subgroup reads fall in different banks.
// Tile sizes equal attn_prefill's (PQ = BQ, PK = BK), so scores, probabilities and row statistics
// use its sp / row_m / row_l / row_c and its softmax_tile_row.
const PQ = BQ;
const PK = BK;
var<workgroup> tq4: array<vec4<f32>, 528>;      // [PQ][head_dim / 4 + 1]
var<workgroup> tkv4: array<vec4<f32>, 1056>;    // [PK][head_dim / 4 + 1]: K tile, then V tile
var<workgroup> tslot: array<u32, 32>;           // the tile's KV slots

// Loads a K or V tile (slots from tslot) into tkv4, four independent loads per thread in flight:
// a loop of one dependent slot+KV load per element was latency-bound (~40 us per tile pair).
fn load_tile4(t0: u32, kv_end: u32, kvh: u32, is_v: bool, lid: u32, rs4: u32) {
  let d4n = p.head_dim / 4u;
  let total = PK * d4n;
  for (var e0 = lid; e0 < total; e0 += 256u) {
    var v: array<vec4<f32>, 4>;
    for (var u = 0u; u < 4u; u++) {
      let e = e0 + 64u * u;
      v[u] = vec4<f32>(0.0);
      if (e < total && t0 + e / d4n < kv_end) {
        let idx = ((tslot[e / d4n] * p.kv_heads + kvh) * p.head_dim) / 2u + 2u * (e % d4n);
        if (is_v) { v[u] = vec4<f32>(v_load2(idx), v_load2(idx + 1u)); } else { v[u] = vec4<f32>(k_load2(idx), k_load2(idx + 1u)); }
      }
    }
    for (var u = 0u; u < 4u; u++) {
      let e = e0 + 64u * u;
      if (e < total) { tkv4[(e / d4n) * rs4 + e % d4n] = v[u]; }
    }
  }
}

// Max / sum over the 8 adjacent lanes of a query row (subgroups of 8 or more only).
fn row8_max(v: vec2<f32>) -> vec2<f32> {
  var r = v;
//#if SUBGROUPS
  r = max(r, subgroupShuffleXor(r, 4u));
  r = max(r, subgroupShuffleXor(r, 2u));
  r = max(r, subgroupShuffleXor(r, 1u));
//#endif
  return r;
}
fn row8_sum(v: vec2<f32>) -> vec2<f32> {
  var r = v;
//#if SUBGROUPS
  r += subgroupShuffleXor(r, 4u);
  r += subgroupShuffleXor(r, 2u);
  r += subgroupShuffleXor(r, 1u);
//#endif
  return r;
}

@compute @workgroup_size(64)
fn attn_prefill_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32
//#if SUBGROUPS
          , @builtin(subgroup_size) sgs_in: u32
//#endif
          ) {
  touch_bindings();
//#if SUBGROUPS
  // The 8 threads of a query row (tk = 0..7) are adjacent lanes: with subgroups of 8 or more the
  // row's softmax runs in registers through shuffles, with no serial pass and two fewer barriers.
  let in_regs = sgs_in >= 8u;
//#else
  let in_regs = false;
//#endif
  var m_r = vec2<f32>(NEG);                  // running max / sum of rows qa, qa + 1 (in_regs)
  var l_r = vec2<f32>(0.0);
  let q0 = wid.x * PQ;
  let h = wid.y;
  let dim = p.head_dim;
  let d4n = dim / 4u;
  let rs4 = d4n + 1u;
  let kvh = h / (p.heads / p.kv_heads);
  let n = st.n_tokens;
  for (var e = lid; e < PQ * d4n; e += 64u) {
    let qi = e / d4n;
    let d4 = e % d4n;
    var v = vec4<f32>(0.0);
    if (q0 + qi < n) {
      let b = ((q0 + qi) * p.heads + h) * dim + 4u * d4;
      v = vec4<f32>(Q[b], Q[b + 1u], Q[b + 2u], Q[b + 3u]) * p.scale;
    }
    tq4[qi * rs4 + d4] = v;
  }
  if (lid < PQ) { row_m[lid] = NEG; row_l[lid] = 0.0; }
  let kv_end = st.n_past + min(q0 + PQ, n);
  let tq = lid / 8u;
  let tk = lid % 8u;
  let qa = 2u * tq;                          // this thread's query rows qa, qa + 1
  let lim0 = st.n_past + q0 + qa + 1u;       // causal limits of those rows
  let lim1 = lim0 + 1u;
  let nc = dim / 32u;                        // output vec4 columns per thread
  var acc: array<vec4<f32>, 8>;              // [query 0/1][c < 4]
  for (var a = 0u; a < 8u; a++) { acc[a] = vec4<f32>(0.0); }
  for (var t0 = 0u; t0 < kv_end; t0 += PK) {
    workgroupBarrier();
    if (lid < PK && t0 + lid < kv_end) { tslot[lid] = u32(CTX[t0 + lid]); }
    workgroupBarrier();
    load_tile4(t0, kv_end, kvh, false, lid, rs4);
    workgroupBarrier();
    var s: array<f32, 8>;                    // [query 0/1][key c]
    for (var a = 0u; a < 8u; a++) { s[a] = 0.0; }
    for (var d4 = 0u; d4 < d4n; d4++) {
      let x0 = tq4[qa * rs4 + d4];
      let x1 = tq4[(qa + 1u) * rs4 + d4];
      for (var c = 0u; c < 4u; c++) {
        let kv = tkv4[(tk + 8u * c) * rs4 + d4];
        s[c] += dot(x0, kv);
        s[4u + c] += dot(x1, kv);
      }
    }
    var cr = vec2<f32>(1.0);
    if (in_regs) {
      var mx = m_r;
      for (var c = 0u; c < 4u; c++) {
        let kk = t0 + tk + 8u * c;
        s[c] = select(NEG, s[c], kk < lim0);
        s[4u + c] = select(NEG, s[4u + c], kk < lim1);
        mx = max(mx, vec2<f32>(s[c], s[4u + c]));
      }
      mx = row8_max(mx);
      var sum = vec2<f32>(0.0);
      for (var c = 0u; c < 4u; c++) {
        let kk = tk + 8u * c;
        let e0 = select(0.0, exp(s[c] - mx.x), s[c] > NEG);
        let e1 = select(0.0, exp(s[4u + c] - mx.y), s[4u + c] > NEG);
        sp[qa * SPS + kk] = e0;
        sp[(qa + 1u) * SPS + kk] = e1;
        sum += vec2<f32>(e0, e1);
      }
      sum = row8_sum(sum);
      cr = exp(m_r - mx);
      l_r = l_r * cr + sum;
      m_r = mx;
      workgroupBarrier();   // every thread is done with the K tile before V overwrites it
    } else {
      for (var c = 0u; c < 4u; c++) {
        let kk = tk + 8u * c;
        sp[qa * SPS + kk] = select(NEG, s[c], t0 + kk < lim0);
        sp[(qa + 1u) * SPS + kk] = select(NEG, s[4u + c], t0 + kk < lim1);
      }
      workgroupBarrier();
      if (lid < PQ) { softmax_tile_row(lid); }
      workgroupBarrier();
      cr = vec2<f32>(row_c[qa], row_c[qa + 1u]);
    }
    load_tile4(t0, kv_end, kvh, true, lid, rs4);
    workgroupBarrier();
    let c0 = cr.x;
    let c1 = cr.y;
    for (var c = 0u; c < 4u; c++) { acc[c] *= c0; acc[4u + c] *= c1; }
    for (var kk = 0u; kk < PK; kk++) {
      let p0 = sp[qa * SPS + kk];
      let p1 = sp[(qa + 1u) * SPS + kk];
      for (var c = 0u; c < 4u; c++) {
        if (c < nc) {
          let v = tkv4[kk * rs4 + tk + 8u * c];
          acc[c] += p0 * v;
          acc[4u + c] += p1 * v;
        }
      }
    }
  }
  workgroupBarrier();
  for (var r = 0u; r < 2u; r++) {
    let qi = qa + r;
    if (q0 + qi < n) {
      let inv = 1.0 / select(row_l[qi], l_r[r], in_regs);
      for (var c = 0u; c < nc; c++) {
        let o = ((q0 + qi) * p.heads + h) * dim + 4u * (tk + 8u * c);
        let v = acc[r * 4u + c] * inv;
        O[o] = v.x; O[o + 1u] = v.y; O[o + 2u] = v.z; O[o + 3u] = v.w;
      }
    }
  }
}
