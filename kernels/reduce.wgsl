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

// Sum over the 8 lanes lid & ~7 .. +7 (8 lanes per key in the decode attention kernels); the
// result is valid in every lane. sgs: the subgroup size (1 without subgroups).
var<workgroup> seg8: array<f32, $WG>;
fn sum8(v: f32, lid: u32, sgs: u32) -> f32 {
//#if SUBGROUPS
  if (sgs >= 8u) {
    var s = v;
    s += subgroupShuffleXor(s, 4u);
    s += subgroupShuffleXor(s, 2u);
    s += subgroupShuffleXor(s, 1u);
    return s;
  }
//#endif
  seg8[lid] = v;
  workgroupBarrier();
  let b = lid & ~7u;
  var s = 0.0;
  for (var i = 0u; i < 8u; i++) { s += seg8[b + i]; }
  workgroupBarrier();
  return s;
}
