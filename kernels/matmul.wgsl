// Y[m, n] (+)= sum_k X[m, k] * W[n, k] (+ bias[n]) with W in any format of dequant.wgsl, selected
// by $WTYPE. Entry points: matvec (decode, one workgroup per output row), matmul (prefill, 32x32
// tiles through shared memory), get_rows (embedding lookup). K % 4 == 0.

struct MatParams {
  n: u32,          // output features (rows of W)
  k: u32,          // input features
  row_bytes: u32,  // bytes per row of W
  m_fixed: u32,    // rows of X; 0 = the step's token count
  flags: u32,      // 1: add bias, 2: accumulate into Y (fused residual add)
  x_row0: u32,     // first row of X to read (e.g. the last token for the LM head)
  scale_off: u32,  // q8r only: word offset of the scales
  pad1: u32,
}
struct Step { n_tokens: u32, n_past: u32, n_ctx: u32, pad: u32 }

@group(0) @binding(0) var<storage, read> W: array<u32>;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;
@group(0) @binding(4) var<uniform> p: MatParams;
@group(0) @binding(5) var<uniform> st: Step;

fn w4(row: u32, k: u32) -> vec4<f32> { return w4_$WTYPE(row, k); }

fn rows_m() -> u32 { return select(st.n_tokens, p.m_fixed, p.m_fixed != 0u); }

fn store(m: u32, n: u32, acc: f32) {
  var v = acc;
  if ((p.flags & 1u) != 0u) { v += B[n]; }
  let i = m * p.n + n;
  if ((p.flags & 2u) != 0u) { v += Y[i]; }
  Y[i] = v;
}

// Every entry point references every binding, so all share one binding set (auto layouts drop
// unused bindings otherwise).
fn touch_bindings() { _ = &W; _ = &X; _ = &Y; _ = &B; _ = &p; _ = &st; _ = &TOK; }

@compute @workgroup_size($WG)
fn matvec(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32
//#if SUBGROUPS
          , @builtin(subgroup_size) sgs: u32, @builtin(subgroup_invocation_id) sgl: u32
//#endif
          ) {
  touch_bindings();
//#if SUBGROUPS
  sg_size = sgs; sg_lane = sgl;
//#endif
  let n = wid.y * nwg.x + wid.x;   // 2-D grid for more than 65535 rows
  let m = wid.z;
  let valid = n < p.n;
  let row = select(0u, n, valid) * p.row_bytes;
  let k4 = p.k / 4u;
  let x0 = (p.x_row0 + m) * k4;
  var acc = vec4<f32>(0.0);
  if (valid) {
    for (var i = lid; i < k4; i += $WG) {
      acc += w4(row, i * 4u) * X[x0 + i];
    }
  }
  let s = reduce_sum(acc.x + acc.y + acc.z + acc.w, lid);
  if (valid && lid == 0u) { store(m, n, s); }
}

const TM = 32u;   // tokens per tile
const TN = 32u;   // output features per tile
const TK = 32u;
var<workgroup> xs: array<vec4<f32>, 256>;   // [TM][TK/4]
var<workgroup> ws: array<vec4<f32>, 256>;   // [TN][TK/4]

@compute @workgroup_size(256)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  touch_bindings();
  let m_rows = rows_m();
  let n0 = wid.x * TN;
  let m0 = wid.y * TM;
  let tx = lid % 16u;   // output features tx, tx + 16
  let ty = lid / 16u;   // tokens ty, ty + 16
  let lr = lid / 8u;    // tile row this thread loads
  let lk = (lid % 8u) * 4u;
  let wn = n0 + lr;
  let xm = m0 + lr;
  let wrow = select(0u, wn, wn < p.n) * p.row_bytes;
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var k0 = 0u; k0 < p.k; k0 += TK) {
    let k = k0 + lk;
    var wv = vec4<f32>(0.0);
    var xv = vec4<f32>(0.0);
    if (wn < p.n && k < p.k) { wv = w4(wrow, k); }
    if (xm < m_rows && k < p.k) { xv = X[(p.x_row0 + xm) * (p.k / 4u) + k / 4u]; }
    ws[lid] = wv;
    xs[lid] = xv;
    workgroupBarrier();
    for (var j = 0u; j < TK / 4u; j++) {
      let w0 = ws[tx * 8u + j];
      let w1 = ws[(tx + 16u) * 8u + j];
      let x0 = xs[ty * 8u + j];
      let x1 = xs[(ty + 16u) * 8u + j];
      acc[0] += dot(x0, w0);
      acc[1] += dot(x0, w1);
      acc[2] += dot(x1, w0);
      acc[3] += dot(x1, w1);
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + ty + (i / 2u) * 16u;
    let n = n0 + tx + (i % 2u) * 16u;
    if (m < m_rows && n < p.n) { store(m, n, acc[i]); }
  }
}

// Embedding lookup: Y[i, :] = dequantized row TOK[i] of W (p.n = vocab, p.k = row length).
@group(0) @binding(6) var<storage, read> TOK: array<u32>;

@compute @workgroup_size(64)
fn get_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  touch_bindings();
  let i = wid.x;
  if (i >= rows_m()) { return; }
  let row = min(TOK[i], p.n - 1u) * p.row_bytes;
  for (var k = lid * 4u; k < p.k; k += 256u) {
    let v = w4(row, k);
    let o = i * p.k + k;
    Y[o] = v.x; Y[o + 1u] = v.y; Y[o + 2u] = v.z; Y[o + 3u] = v.w;
  }
}
