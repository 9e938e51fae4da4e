// Decode-time matrix-vector products fused with what surrounds them. Two weight paths:
//   Q8R: Q8_0 repacked at upload (all int8 quants as u32 words, then one f32 scale per 32
//        weights); a lane reads 16 weights (one vec4<u32>) per step.
//   Q4K: every matrix of the dispatch in Q4_K, read in place: a lane takes 32 weights (one
//        vec4<u32> of nibbles plus the 16-byte block header: d, dmin, 6-bit scales and mins).
//   else: any dequant.wgsl format per matrix ($W4FN0..2 name a per-buffer copy of its w4_*
//        function); a lane reads 4 weights per step.
// Fusions:
//   - up to three matrices in one dispatch (q, k, v), rows numbered across them;
//   - swiglu mode: Y0 = silu(W0 x) * (W1 x) (gate and up in one pass);
//   - an RMS norm of x computed in the prologue (x * rsqrt(mean(x^2) + eps) * NW);
//   - bias and accumulation into Y0 (the residual add) in the epilogue.
// 256 threads = 8 rows x 32 lanes.

struct FusedParams {
  n0: u32, n1: u32, n2: u32, k: u32,
  so0: u32, so1: u32, so2: u32,   // Q8R: word offset of each matrix's scales; else bytes per row
  flags: u32,                      // 1 rms-norm x, 2 swiglu, 4 accumulate Y0, 8/16/32 bias of W0/W1/W2
  eps: f32, x_row0: u32, scale_off: u32, pad1: u32,   // scale_off: unused (dequant.wgsl's q8r)
}

//#if VEC4W
@group(0) @binding(0) var<storage, read> W0: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> W1: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> W2: array<vec4<u32>>;
//#else
@group(0) @binding(0) var<storage, read> W0: array<u32>;
@group(0) @binding(1) var<storage, read> W1: array<u32>;
@group(0) @binding(2) var<storage, read> W2: array<u32>;
//#endif
@group(0) @binding(3) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> NW: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> Y0: array<f32>;
@group(0) @binding(6) var<storage, read_write> Y1: array<f32>;
@group(0) @binding(7) var<storage, read_write> Y2: array<f32>;
@group(0) @binding(8) var<storage, read> B0: array<f32>;
@group(0) @binding(9) var<storage, read> B1: array<f32>;
@group(0) @binding(10) var<storage, read> B2: array<f32>;
@group(0) @binding(11) var<uniform> p: FusedParams;

fn touch_bindings() {
  _ = &W0; _ = &W1; _ = &W2; _ = &X; _ = &NW; _ = &Y0; _ = &Y1; _ = &Y2; _ = &B0; _ = &B1; _ = &B2; _ = &p;
}

//#if Q8R
fn i8x4(v: u32) -> vec4<f32> {
  return vec4<f32>(vec4<i32>(bitcast<i32>(v << 24u), bitcast<i32>(v << 16u), bitcast<i32>(v << 8u), bitcast<i32>(v)) >> vec4<u32>(24u));
}
fn dot16(q: vec4<u32>, x0: u32) -> f32 {
  return dot(i8x4(q.x), xin(x0)) + dot(i8x4(q.y), xin(x0 + 1u)) + dot(i8x4(q.z), xin(x0 + 2u)) + dot(i8x4(q.w), xin(x0 + 3u));
}
//#endif

//#if XS
// x (normalised when the norm is fused) staged once per workgroup: the dot loops then read
// shared memory instead of re-reading X and NW from cache for every weight chunk.
var<workgroup> xs: array<vec4<f32>, $XS4>;
//#endif

var<private> x_base: u32;     // first vec4 of this token's x row
var<private> x_scale: f32;    // rms-norm scale (1 without the norm)
var<private> use_norm: bool;

fn xin(j: u32) -> vec4<f32> {
//#if XS
  return xs[j];
//#else
  let v = X[x_base + j];
  if (use_norm) { return v * x_scale * NW[j]; }
  return v;
//#endif
}

//#if Q8R
// Each row's scale word s sits in component s % 4 of vec4 s / 4.
fn scale_of(w: vec4<u32>, s: u32) -> f32 { return bitcast<f32>(w[s & 3u]); }

// Partial dot product of row `row` over this lane's chunks, two chunks (32 weights, 32 bytes)
// per iteration so each lane has two independent loads in flight. The marked each-buffer blocks
// are written for W0 and copied for W1 and W2 when the pipeline is built (expandEachBuffer).
//#each-buffer
fn dot_w0(row: u32, c0: u32, step: u32) -> f32 {
  let k16 = p.k / 16u;
  let sb = p.so0 + row * (p.k / 32u);
  let rb = row * k16;
  var acc = 0.0;
  var c = c0;
  for (; c + step < k16; c += 2u * step) {
    let q0 = W0[rb + c];
    let q1 = W0[rb + c + step];
    let s0 = sb + c / 2u;
    let s1 = sb + (c + step) / 2u;
    acc += scale_of(W0[s0 >> 2u], s0) * dot16(q0, c * 4u) + scale_of(W0[s1 >> 2u], s1) * dot16(q1, (c + step) * 4u);
  }
  if (c < k16) {
    let s0 = sb + c / 2u;
    acc += scale_of(W0[s0 >> 2u], s0) * dot16(W0[rb + c], c * 4u);
  }
  return acc;
}
//#end-each-buffer
// Two adjacent rows per lane pass (NR2): x is read once for both, and two weight loads are in
// flight per iteration. r1 is clamped to the matrix's last row (its result is then discarded).
//#each-buffer
fn dot2_w0(row: u32, nrows: u32, lane: u32) -> vec2<f32> {
  let k16 = p.k / 16u;
  let kb = p.k / 32u;
  let r1 = min(row + 1u, nrows - 1u);
  let sb0 = p.so0 + row * kb;
  let sb1 = p.so0 + r1 * kb;
  var acc = vec2<f32>(0.0);
  for (var c = lane; c < k16; c += 32u) {
    let q0 = W0[row * k16 + c];
    let q1 = W0[r1 * k16 + c];
    let s0 = sb0 + c / 2u;
    let s1 = sb1 + c / 2u;
    let x0 = xin(c * 4u);
    let x1 = xin(c * 4u + 1u);
    let x2 = xin(c * 4u + 2u);
    let x3 = xin(c * 4u + 3u);
    acc.x += scale_of(W0[s0 >> 2u], s0) * (dot(i8x4(q0.x), x0) + dot(i8x4(q0.y), x1) + dot(i8x4(q0.z), x2) + dot(i8x4(q0.w), x3));
    acc.y += scale_of(W0[s1 >> 2u], s1) * (dot(i8x4(q1.x), x0) + dot(i8x4(q1.y), x1) + dot(i8x4(q1.z), x2) + dot(i8x4(q1.w), x3));
  }
  return acc;
}
//#end-each-buffer
//#else
//#if Q4K
// Q4_K block (256 weights, 144 bytes = 9 vec4): header (d, dmin as f16; 12 bytes of 6-bit
// scales/mins), then 128 bytes of nibbles; bytes 32i..32i+31 hold sub-block 2i in their low
// nibbles and 2i+1 in their high ones. Chunk c of a row: block c / 8, segment (c % 8) / 2,
// half c % 2 -> 16 bytes = weights 64i + 16h + 0..15 (low) and 64i + 32 + 16h + 0..15 (high).
fn q4k_byte(h: vec4<u32>, b: u32) -> u32 {
  let w = select(select(h.w, h.z, b < 8u), h.y, b < 4u);
  return (w >> (8u * (b % 4u))) & 0xffu;
}
// (scale, min) of sub-block j as ggml's get_scale_min_k4
fn q4k_scale_min(h: vec4<u32>, j: u32) -> vec2<f32> {
  if (j < 4u) { return vec2<f32>(f32(q4k_byte(h, j) & 63u), f32(q4k_byte(h, j + 4u) & 63u)); }
  let sc = (q4k_byte(h, j + 4u) & 15u) | ((q4k_byte(h, j - 4u) >> 6u) << 4u);
  let mn = (q4k_byte(h, j + 4u) >> 4u) | ((q4k_byte(h, j) >> 6u) << 4u);
  return vec2<f32>(f32(sc), f32(mn));
}
fn nib_lo(w: u32) -> vec4<f32> { return vec4<f32>(vec4<u32>(w, w >> 8u, w >> 16u, w >> 24u) & vec4<u32>(15u)); }
fn nib_hi(w: u32) -> vec4<f32> { return vec4<f32>(vec4<u32>(w >> 4u, w >> 12u, w >> 20u, w >> 28u) & vec4<u32>(15u)); }
// First x vec4 of chunk c's low half (its high half starts 8 vec4 later).
fn q4k_xb(c: u32) -> u32 { return (c / 8u) * 64u + ((c % 8u) / 2u) * 16u + (c % 2u) * 4u; }

// 32 weights: header hd, nibbles q, x from vec4 index xb (low half) and xb + 8 (high half)
fn q4k_chunk(hd: vec4<u32>, q: vec4<u32>, c: u32, xb: u32) -> f32 {
  let dm = unpack2x16float(hd.x);
  let i = (c % 8u) / 2u;
  let lo = q4k_scale_min(hd, 2u * i);
  let hi = q4k_scale_min(hd, 2u * i + 1u);
  let x0 = xin(xb); let x1 = xin(xb + 1u); let x2 = xin(xb + 2u); let x3 = xin(xb + 3u);
  let y0 = xin(xb + 8u); let y1 = xin(xb + 9u); let y2 = xin(xb + 10u); let y3 = xin(xb + 11u);
  let one = vec4<f32>(1.0);
  let sl = dot(nib_lo(q.x), x0) + dot(nib_lo(q.y), x1) + dot(nib_lo(q.z), x2) + dot(nib_lo(q.w), x3);
  let sh = dot(nib_hi(q.x), y0) + dot(nib_hi(q.y), y1) + dot(nib_hi(q.z), y2) + dot(nib_hi(q.w), y3);
  let xl = dot(x0 + x1 + x2 + x3, one);
  let xh = dot(y0 + y1 + y2 + y3, one);
  return dm.x * (lo.x * sl + hi.x * sh) - dm.y * (lo.y * xl + hi.y * xh);
}
//#each-buffer
fn dot_w0(row: u32, c0: u32, step: u32) -> f32 {
  // c0/step count 32-weight chunks here; two chunks per iteration (four loads in flight)
  let rb = row * (p.so0 / 16u);
  let nc = p.k / 32u;
  var acc = 0.0;
  var c = c0;
  for (; c + step < nc; c += 2u * step) {
    let c1 = c + step;
    let b0 = rb + 9u * (c / 8u);
    let b1 = rb + 9u * (c1 / 8u);
    let h0 = W0[b0];
    let q0 = W0[b0 + 1u + c % 8u];
    let h1 = W0[b1];
    let q1 = W0[b1 + 1u + c1 % 8u];
    acc += q4k_chunk(h0, q0, c, q4k_xb(c)) + q4k_chunk(h1, q1, c1, q4k_xb(c1));
  }
  if (c < nc) {
    let b = rb + 9u * (c / 8u);
    acc += q4k_chunk(W0[b], W0[b + 1u + c % 8u], c, q4k_xb(c));
  }
  return acc;
}
//#end-each-buffer
//#else
//#each-buffer
fn dot_w0(row: u32, c0: u32, step: u32) -> f32 {
  // c0/step count 4-weight chunks here (16-weight chunks in the q8r path)
  var acc = 0.0;
  for (var c = c0; c < p.k / 4u; c += step) { acc += dot($W4FN0(row * p.so0, 4u * c), xin(c)); }
  return acc;
}
//#end-each-buffer
//#endif
//#endif

var<workgroup> seg: array<f32, 256>;
var<workgroup> kpart: array<vec2<f32>, 8>;   // split-K partials per subgroup

// Sum over the 32 lanes of each row; the result is valid in every lane.
fn lane_sum(v: f32, lid: u32, sgs: u32) -> f32 {
//#if SUBGROUPS
  if (sgs >= 32u) {
    var s = v;
    s += subgroupShuffleXor(s, 16u);
    s += subgroupShuffleXor(s, 8u);
    s += subgroupShuffleXor(s, 4u);
    s += subgroupShuffleXor(s, 2u);
    s += subgroupShuffleXor(s, 1u);
    return s;
  }
//#endif
  seg[lid] = v;
  workgroupBarrier();
  for (var o = 16u; o > 0u; o >>= 1u) {
    if ((lid & 31u) < o) { seg[lid] += seg[lid + o]; }
    workgroupBarrier();
  }
  let r = seg[lid & ~31u];
  workgroupBarrier();
  return r;
}

// Epilogue of row r (numbered across the matrices) for token m: bias, SwiGLU, residual add.
fn store_row(m: u32, r: u32, a: f32, b: f32, swiglu: bool, total: u32) {
  if (r >= total) { return; }
  if (r < p.n0) {
    var y = a;
    if ((p.flags & 8u) != 0u) { y += B0[r]; }
    if (swiglu) {
      var u = b;
      if ((p.flags & 16u) != 0u) { u += B1[r]; }
      y = y / (1.0 + exp(-y)) * u;
    }
    let i = m * p.n0 + r;
    if ((p.flags & 4u) != 0u) { y += Y0[i]; }
    Y0[i] = y;
  } else if (r < p.n0 + p.n1) {
    let j = r - p.n0;
    var y = a;
    if ((p.flags & 16u) != 0u) { y += B1[j]; }
    Y1[m * p.n1 + j] = y;
  } else {
    let j = r - p.n0 - p.n1;
    var y = a;
    if ((p.flags & 32u) != 0u) { y += B2[j]; }
    Y2[m * p.n2 + j] = y;
  }
}

@compute @workgroup_size(256)
fn matvec_fused(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32
//#if SUBGROUPS
             , @builtin(subgroup_size) sgs_in: u32, @builtin(subgroup_invocation_id) sgl: u32
//#endif
             ) {
  touch_bindings();
//#if SUBGROUPS
  sg_size = sgs_in; sg_lane = sgl;
  let sgs = sgs_in;
//#else
  let sgs = 1u;
//#endif
  let m = wid.z;
  let k4 = p.k / 4u;
  x_base = (p.x_row0 + m) * k4;
  use_norm = (p.flags & 1u) != 0u;
  x_scale = 1.0;
//#if XS
  var ss = 0.0;
  for (var j = lid; j < k4; j += 256u) { let v = X[x_base + j]; xs[j] = v; ss += dot(v, v); }
  if ((p.flags & 1u) != 0u) {
    x_scale = inverseSqrt(reduce_sum(ss, lid) / f32(p.k) + p.eps);   // its barriers publish xs
    for (var j = lid; j < k4; j += 256u) { xs[j] = xs[j] * x_scale * NW[j]; }
  }
  workgroupBarrier();
//#else
  if ((p.flags & 1u) != 0u) {
    var ss = 0.0;
    for (var j = lid; j < k4; j += 256u) { let v = X[x_base + j]; ss += dot(v, v); }
    x_scale = inverseSqrt(reduce_sum(ss, lid) / f32(p.k) + p.eps);
  }
//#endif
  let lane = lid & 31u;
  let swiglu = (p.flags & 2u) != 0u;
  let total = select(p.n0 + p.n1 + p.n2, p.n0, swiglu);
//#if NR2
  // two adjacent rows per subgroup; the host guarantees a pair never straddles two matrices
  let r = ((wid.y * nwg.x + wid.x) * 8u + lid / 32u) * 2u;
  var a = vec2<f32>(0.0);
  var b = vec2<f32>(0.0);
  if (r < p.n0) {
    a = dot2_w0(r, p.n0, lane);
    if (swiglu) { b = dot2_w1(r, p.n0, lane); }
  } else if (r < p.n0 + p.n1) {
    a = dot2_w1(r - p.n0, p.n1, lane);
  } else if (r < total) {
    a = dot2_w2(r - p.n0 - p.n1, p.n2, lane);
  }
  a.x = lane_sum(a.x, lid, sgs);
  a.y = lane_sum(a.y, lid, sgs);
  if (swiglu) { b.x = lane_sum(b.x, lid, sgs); b.y = lane_sum(b.y, lid, sgs); }
  if (lane != 0u) { return; }
  store_row(m, r, a.x, b.x, swiglu, total);
  // the second row exists unless r is the last row of its matrix
  let end = select(select(total, p.n0 + p.n1, r < p.n0 + p.n1), p.n0, r < p.n0);
  if (r + 1u < end) { store_row(m, r + 1u, a.y, b.y, swiglu, total); }
//#else
  // $KS subgroups per row (split-K): a matrix with few rows still keeps every SM busy
  let warp = lid / 32u;
  let r = (wid.y * nwg.x + wid.x) * (8u / $KSu) + warp / $KSu;
  let c0 = lane + 32u * (warp % $KSu);
  let step = 32u * $KSu;
  var a = 0.0;
  var b = 0.0;
  if (r < p.n0) {
    a = dot_w0(r, c0, step);
    if (swiglu) { b = dot_w1(r, c0, step); }
  } else if (r < p.n0 + p.n1) {
    a = dot_w1(r - p.n0, c0, step);
  } else if (r < total) {
    a = dot_w2(r - p.n0 - p.n1, c0, step);
  }
  a = lane_sum(a, lid, sgs);
  if (swiglu) { b = lane_sum(b, lid, sgs); }
  if ($KSu > 1u) {
    if (lane == 0u) { kpart[warp] = vec2<f32>(a, b); }
    workgroupBarrier();
    if (warp % $KSu != 0u) { return; }
    for (var j = 1u; j < $KSu; j++) { let o = kpart[warp + j]; a += o.x; b += o.y; }
  }
  if (lane != 0u) { return; }
  store_row(m, r, a, b, swiglu, total);
//#endif
}
