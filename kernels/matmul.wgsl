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

const TM = 64u;   // tokens per tile
const TN = 64u;   // output features per tile
const TK = 32u;
// Tile rows are padded to TK/4 + 1 vec4: the 16 feature rows a subgroup reads at one k sat 32
// floats apart, all in the same four shared-memory banks (a 16-way conflict); 36 apart they spread.
const TS = 9u;                                // padded row stride in vec4
var<workgroup> xs: array<vec4<f32>, 576>;   // [TM][TS]
var<workgroup> ws: array<vec4<f32>, 576>;   // [TN][TS]

// 256 threads, each computing 4 tokens x 4 features (strided by 16 to spread shared-memory banks).
@compute @workgroup_size(256)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  touch_bindings();
  let m_rows = rows_m();
  let n0 = wid.x * TN;
  let m0 = wid.y * TM;
  let tx = lid % 16u;   // features tx + 16j
  let ty = lid / 16u;   // tokens ty + 16i
  var acc: array<vec4<f32>, 4>;  // acc[i][j]
  for (var i = 0u; i < 4u; i++) { acc[i] = vec4<f32>(0.0); }
  let k4 = p.k / 4u;
  for (var k0 = 0u; k0 < p.k; k0 += TK) {
    // each thread loads 2 vec4 of W and 2 of X: tile rows lid / 8 and lid / 8 + 32
    for (var h = 0u; h < 2u; h++) {
      let r = lid / 8u + h * 32u;
      let k = k0 + (lid % 8u) * 4u;
      let wn = n0 + r;
      let xm = m0 + r;
      var wv = vec4<f32>(0.0);
      var xv = vec4<f32>(0.0);
      if (wn < p.n && k < p.k) { wv = w4(wn * p.row_bytes, k); }
      if (xm < m_rows && k < p.k) { xv = X[(p.x_row0 + xm) * k4 + k / 4u]; }
      ws[r * TS + lid % 8u] = wv;
      xs[r * TS + lid % 8u] = xv;
    }
    workgroupBarrier();
    for (var j = 0u; j < TK / 4u; j++) {
      let w = array<vec4<f32>, 4>(ws[tx * TS + j], ws[(tx + 16u) * TS + j], ws[(tx + 32u) * TS + j], ws[(tx + 48u) * TS + j]);
      for (var i = 0u; i < 4u; i++) {
        let x = xs[(ty + 16u * i) * TS + j];
        acc[i] += vec4<f32>(dot(x, w[0]), dot(x, w[1]), dot(x, w[2]), dot(x, w[3]));
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + ty + 16u * i;
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + tx + 16u * j;
      if (m < m_rows && n < p.n) { store(m, n, acc[i][j]); }
    }
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
