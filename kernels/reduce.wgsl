// Workgroup reductions for 1-D workgroups of $WG threads; every thread gets the result.
// With subgroups: one subgroupAdd/Max, then the per-subgroup partials through shared memory.
// Callers set sg_size/sg_lane from the entry point's builtins first (1/0 without subgroups).

var<workgroup> red: array<f32, $WG>;
var<private> sg_size: u32 = 1u;
var<private> sg_lane: u32 = 0u;

fn reduce_sum(v: f32, lid: u32) -> f32 {
//#if SUBGROUPS
  let s = subgroupAdd(v);
  if (sg_lane == 0u) { red[lid / sg_size] = s; }
  workgroupBarrier();
  var r = 0.0;
  for (var i = 0u; i < $WG / sg_size; i++) { r += red[i]; }
  workgroupBarrier();
  return r;
//#else
  red[lid] = v;
  workgroupBarrier();
  for (var s = $WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
//#endif
}

fn reduce_max(v: f32, lid: u32) -> f32 {
//#if SUBGROUPS
  let s = subgroupMax(v);
  if (sg_lane == 0u) { red[lid / sg_size] = s; }
  workgroupBarrier();
  var r = red[0];
  for (var i = 1u; i < $WG / sg_size; i++) { r = max(r, red[i]); }
  workgroupBarrier();
  return r;
//#else
  red[lid] = v;
  workgroupBarrier();
  for (var s = $WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
//#endif
}

// Sum over aligned groups of `width` adjacent lanes (a power of two, 2..32: 8 lanes per key in
// the decode attention kernels, 32 per row in the fused matvecs); valid in every lane of the
// group. sgs: the subgroup size (1 without subgroups); smaller subgroups use shared memory.
var<workgroup> seg: array<f32, $WG>;
fn group_sum(v: f32, lid: u32, sgs: u32, width: u32) -> f32 {
//#if SUBGROUPS
  if (sgs >= width) {
    var s = v;
    for (var o = width / 2u; o > 0u; o >>= 1u) { s += subgroupShuffleXor(s, o); }
    return s;
  }
//#endif
  seg[lid] = v;
  workgroupBarrier();
  for (var o = width / 2u; o > 0u; o >>= 1u) {
    if ((lid & (width - 1u)) < o) { seg[lid] += seg[lid + o]; }
    workgroupBarrier();
  }
  let r = seg[lid & ~(width - 1u)];
  workgroupBarrier();
  return r;
}
