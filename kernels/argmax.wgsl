// Greedy sampling on the GPU: OUT[m] = index of the largest logit of row m (lowest index on ties).
// argmax: one workgroup per row (small rows). For a vocabulary-sized row one workgroup is
// latency-bound (~600 dependent loads per thread), so argmax_part spreads a row over p.parts
// workgroups, each writing its (value, index) to PART, and argmax_final reduces those.

struct ArgmaxParams { len: u32, parts: u32, pad1: u32, pad2: u32 }

@group(0) @binding(0) var<storage, read> L: array<f32>;
@group(0) @binding(1) var<storage, read_write> OUT: array<u32>;
@group(0) @binding(2) var<uniform> p: ArgmaxParams;
@group(0) @binding(3) var<storage, read_write> PART: array<u32>;   // [row][part][value bits, index]

var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>;

// Every entry point references every binding, so all share one binding set (auto layouts drop
// unused bindings otherwise).
fn touch_bindings() { _ = &L; _ = &OUT; _ = &p; _ = &PART; }

// Tree reduction of (bv, bi) to slot 0: larger value wins, the lower index on ties.
fn reduce_best(lid: u32) {
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let ov = bv[lid + s];
      let oi = bi[lid + s];
      if (ov > bv[lid] || (ov == bv[lid] && oi < bi[lid])) { bv[lid] = ov; bi[lid] = oi; }
    }
    workgroupBarrier();
  }
}

// One row [begin, end) scan: NaN never wins; strictly greater keeps the lowest index.
fn scan(row: u32, begin: u32, end: u32, lid: u32) {
  var v = -3.4e38;
  var idx = 0xffffffffu;
  for (var i = begin + lid; i < end; i += 256u) {
    let x = L[row + i];
    if (x > v) { v = x; idx = i; }
  }
  bv[lid] = v;
  bi[lid] = idx;
  reduce_best(lid);
}

@compute @workgroup_size(256)
fn argmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  touch_bindings();
  scan(wid.x * p.len, 0u, p.len, lid);
  if (lid == 0u) { OUT[wid.x] = select(bi[0], 0u, bi[0] == 0xffffffffu); }
}

// grid (parts, rows)
@compute @workgroup_size(256)
fn argmax_part(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  touch_bindings();
  let per = (p.len + p.parts - 1u) / p.parts;
  let begin = wid.x * per;
  scan(wid.y * p.len, begin, min(begin + per, p.len), lid);
  if (lid == 0u) {
    let o = 2u * (wid.y * p.parts + wid.x);
    PART[o] = bitcast<u32>(bv[0]);
    PART[o + 1u] = bi[0];
  }
}

// grid (rows); p.parts <= 256
@compute @workgroup_size(256)
fn argmax_final(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  touch_bindings();
  var v = -3.4e38;
  var idx = 0xffffffffu;
  if (lid < p.parts) {
    let o = 2u * (wid.x * p.parts + lid);
    v = bitcast<f32>(PART[o]);
    idx = PART[o + 1u];
  }
  bv[lid] = v;
  bi[lid] = idx;
  reduce_best(lid);
  if (lid == 0u) { OUT[wid.x] = select(bi[0], 0u, bi[0] == 0xffffffffu); }
}
