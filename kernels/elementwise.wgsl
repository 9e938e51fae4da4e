// Elementwise ops over the step's token rows (p.len = elements per row):
// add: A += B (residual); swiglu: A = silu(A) * B (gate in A, up in B); gelu: A = gelu(A)
// (tanh approximation, as ggml_gelu).

struct EwParams { len: u32, m_fixed: u32, pad0: u32, pad1: u32 }
struct Step { n_tokens: u32, n_past: u32, n_ctx: u32, pad: u32 }

@group(0) @binding(0) var<storage, read_write> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<uniform> p: EwParams;
@group(0) @binding(3) var<uniform> st: Step;

fn count() -> u32 { return select(st.n_tokens, p.m_fixed, p.m_fixed != 0u) * p.len; }
fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * 256u; }

// Every entry point references every binding, so all share one binding set (auto layouts drop
// unused bindings otherwise).
fn touch_bindings() { _ = &A; _ = &B; _ = &p; _ = &st; }

@compute @workgroup_size(256)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  touch_bindings();
  let i = index(gid, nwg);
  if (i < count()) { A[i] = A[i] + B[i]; }
}

@compute @workgroup_size(256)
fn swiglu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  touch_bindings();
  let i = index(gid, nwg);
  if (i < count()) { let g = A[i]; A[i] = g / (1.0 + exp(-g)) * B[i]; }
}

const SQRT_2_OVER_PI = 0.7978845608028654;
@compute @workgroup_size(256)
fn gelu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  touch_bindings();
  let i = index(gid, nwg);
  if (i < count()) {
    let x = A[i];
    // tanh(z) = 1 - 2 / (exp(2z) + 1) stays finite for large |z|, unlike some tanh builtins
    let z = clamp(SQRT_2_OVER_PI * x * (1.0 + 0.044715 * x * x), -20.0, 20.0);
    A[i] = 0.5 * x * (2.0 - 2.0 / (exp(2.0 * z) + 1.0));
  }
}
