// Greedy sampling on the GPU: OUT[m] = index of the largest logit of row m (lowest index on ties).

struct ArgmaxParams { len: u32, pad0: u32, pad1: u32, pad2: u32 }

@group(0) @binding(0) var<storage, read> L: array<f32>;
@group(0) @binding(1) var<storage, read_write> OUT: array<u32>;
@group(0) @binding(2) var<uniform> p: ArgmaxParams;

var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>;

// Every entry point references every binding, so all share one binding set (auto layouts drop
// unused bindings otherwise).
fn touch_bindings() { _ = &L; _ = &OUT; _ = &p; }

@compute @workgroup_size(256)
fn argmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  touch_bindings();
  let row = wid.x * p.len;
  var v = -3.4e38;
  var idx = 0xffffffffu;
  for (var i = lid; i < p.len; i += 256u) {
    let x = L[row + i];
    if (x > v) { v = x; idx = i; }   // NaN never wins; strictly greater keeps the lowest index
  }
  bv[lid] = v;
  bi[lid] = idx;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let ov = bv[lid + s];
      let oi = bi[lid + s];
      if (ov > bv[lid] || (ov == bv[lid] && oi < bi[lid])) { bv[lid] = ov; bi[lid] = oi; }
    }
    workgroupBarrier();
  }
  if (lid == 0u) { OUT[wid.x] = select(bi[0], 0u, bi[0] == 0xffffffffu); }
}
