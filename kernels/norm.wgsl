// RMSNorm (llama, qwen2) and LayerNorm (starcoder2) over rows of length p.e, one workgroup per row:
// Y = X / sqrt(mean(X^2) + eps) * w      or      Y = (X - mean) / sqrt(var + eps) * w + b.

struct NormParams { e: u32, eps: f32, m_fixed: u32, x_row0: u32 }
struct Step { n_tokens: u32, n_past: u32, n_ctx: u32, pad: u32 }

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<storage, read> NW: array<f32>;
@group(0) @binding(3) var<storage, read> NB: array<f32>;
@group(0) @binding(4) var<uniform> p: NormParams;
@group(0) @binding(5) var<uniform> st: Step;

fn rows_m() -> u32 { return select(st.n_tokens, p.m_fixed, p.m_fixed != 0u); }

// Every entry point references every binding, so all share one binding set (auto layouts drop
// unused bindings otherwise).
fn touch_bindings() { _ = &X; _ = &Y; _ = &NW; _ = &NB; _ = &p; _ = &st; }

@compute @workgroup_size($WG)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32
//#if SUBGROUPS
          , @builtin(subgroup_size) sgs: u32, @builtin(subgroup_invocation_id) sgl: u32
//#endif
          ) {
  touch_bindings();
//#if SUBGROUPS
  sg_size = sgs; sg_lane = sgl;
//#endif
  let m = wid.x;
  if (m >= rows_m()) { return; }   // uniform per workgroup
  let xo = (p.x_row0 + m) * p.e;
  let yo = m * p.e;
  var ss = 0.0;
  for (var i = lid; i < p.e; i += $WG) { let v = X[xo + i]; ss += v * v; }
  let scale = inverseSqrt(reduce_sum(ss, lid) / f32(p.e) + p.eps);
  for (var i = lid; i < p.e; i += $WG) { Y[yo + i] = X[xo + i] * scale * NW[i]; }
}

@compute @workgroup_size($WG)
fn layer_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32
//#if SUBGROUPS
          , @builtin(subgroup_size) sgs: u32, @builtin(subgroup_invocation_id) sgl: u32
//#endif
          ) {
  touch_bindings();
//#if SUBGROUPS
  sg_size = sgs; sg_lane = sgl;
//#endif
  let m = wid.x;
  if (m >= rows_m()) { return; }
  let xo = (p.x_row0 + m) * p.e;
  let yo = m * p.e;
  var s = 0.0;
  for (var i = lid; i < p.e; i += $WG) { s += X[xo + i]; }
  let mean = reduce_sum(s, lid) / f32(p.e);
  var ss = 0.0;
  for (var i = lid; i < p.e; i += $WG) { let d = X[xo + i] - mean; ss += d * d; }
  let scale = inverseSqrt(reduce_sum(ss, lid) / f32(p.e) + p.eps);
  for (var i = lid; i < p.e; i += $WG) { Y[yo + i] = (X[xo + i] - mean) * scale * NW[i] + NB[i]; }
}
