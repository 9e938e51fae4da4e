// Weight dequantization in registers, shared by the matmul/matvec/get-rows kernels.
// Weights live in their file layout (llama.cpp block formats) in `W: array<u32>`; every function
// returns 4 consecutive weights of one row: w4_<type>(row_byte_offset, k) with k % 4 == 0.
// Block offsets are even for every format here, so 16-bit reads never straddle a word.

fn rd32(b: u32) -> u32 {           // 4 bytes at an even byte offset
  let w = b >> 2u;
  if ((b & 3u) == 0u) { return W[w]; }
  return (W[w] >> 16u) | (W[w + 1u] << 16u);
}
fn rd16(b: u32) -> u32 {           // 2 bytes at an even byte offset
  return (W[b >> 2u] >> ((b & 2u) * 8u)) & 0xffffu;
}
fn rd8(b: u32) -> u32 {
  return (W[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
}
fn half(bits: u32) -> f32 { return unpack2x16float(bits).x; }
fn i8x4(v: u32) -> vec4<f32> {     // 4 signed bytes, lowest byte first
  return vec4<f32>(vec4<i32>(bitcast<i32>(v << 24u), bitcast<i32>(v << 16u), bitcast<i32>(v << 8u), bitcast<i32>(v)) >> vec4<u32>(24u));
}
fn u4x4(v: u32, shift: u32) -> vec4<f32> { // the nibbles at `shift` of 4 bytes
  return vec4<f32>(vec4<u32>(v >> shift, v >> (shift + 8u), v >> (shift + 16u), v >> (shift + 24u)) & vec4<u32>(15u));
}

fn w4_f32(row: u32, k: u32) -> vec4<f32> {
  let i = (row >> 2u) + k;
  return vec4<f32>(bitcast<f32>(W[i]), bitcast<f32>(W[i + 1u]), bitcast<f32>(W[i + 2u]), bitcast<f32>(W[i + 3u]));
}

fn w4_f16(row: u32, k: u32) -> vec4<f32> {
  let b = row + 2u * k;
  return vec4<f32>(unpack2x16float(rd32(b)), unpack2x16float(rd32(b + 4u)));
}

// block_q8_0 { f16 d; i8 qs[32]; } 34 bytes
fn w4_q8_0(row: u32, k: u32) -> vec4<f32> {
  let blk = row + (k >> 5u) * 34u;
  return half(rd16(blk)) * i8x4(rd32(blk + 2u + (k & 31u)));
}

// q8r: Q8_0 repacked at upload: the matrix's int8 quants as words (row = row_index * K bytes),
// then one f32 scale per 32 weights from word p.scale_off.
fn w4_q8r(row: u32, k: u32) -> vec4<f32> {
  let e = row + k;
  return bitcast<f32>(W[p.scale_off + e / 32u]) * i8x4(W[e >> 2u]);
}

// block_q4_0 { f16 d; u8 qs[16]; } 18 bytes; element j < 16 is the low nibble of qs[j],
// element j >= 16 the high nibble of qs[j - 16]; value = d * (q - 8)
fn w4_q4_0(row: u32, k: u32) -> vec4<f32> {
  let blk = row + (k >> 5u) * 18u;
  let j = k & 31u;
  let q = u4x4(rd32(blk + 2u + (j & 15u)), (j >> 4u) * 4u);
  return half(rd16(blk)) * (q - vec4<f32>(8.0));
}

// block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128]; } 144 bytes, 256 weights in 8 groups
// of 32 with 6-bit scales and mins (get_scale_min_k4); value = d * sc * q - dmin * m
fn w4_q4_k(row: u32, k: u32) -> vec4<f32> {
  let blk = row + (k >> 8u) * 144u;
  let e = k & 255u;
  let g = e >> 6u;                 // 64-weight group: 32 low nibbles then 32 high nibbles
  let hi = (e >> 5u) & 1u;
  let l = e & 31u;
  let is = 2u * g + hi;
  var sc: u32; var mn: u32;
  if (is < 4u) {
    sc = rd8(blk + 4u + is) & 63u;
    mn = rd8(blk + 8u + is) & 63u;
  } else {
    sc = (rd8(blk + 8u + is) & 15u) | ((rd8(blk + is) >> 6u) << 4u);
    mn = (rd8(blk + 8u + is) >> 4u) | ((rd8(blk + 4u + is) >> 6u) << 4u);
  }
  let dm = unpack2x16float(rd32(blk));
  let q = u4x4(rd32(blk + 16u + 32u * g + l), hi * 4u);
  return dm.x * f32(sc) * q - vec4<f32>(dm.y * f32(mn));
}

// block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; } 210 bytes, 256 weights;
// q = (4 low bits from ql | 2 high bits from qh) - 32; value = d * scale[16 weights] * q
fn w4_q6_k(row: u32, k: u32) -> vec4<f32> {
  let blk = row + (k >> 8u) * 210u;
  let e = k & 255u;
  let h = e >> 7u;                 // which 128-weight half
  let quad = (e >> 5u) & 3u;
  let l = e & 31u;
  let ql = rd32(blk + h * 64u + (quad & 1u) * 32u + l);
  let qh = rd32(blk + 128u + h * 32u + l);
  let lo = (vec4<u32>(ql, ql >> 8u, ql >> 16u, ql >> 24u) >> vec4<u32>((quad >> 1u) * 4u)) & vec4<u32>(15u);
  let hb = (vec4<u32>(qh, qh >> 8u, qh >> 16u, qh >> 24u) >> vec4<u32>(quad * 2u)) & vec4<u32>(3u);
  let q = vec4<f32>(vec4<i32>(lo | (hb << vec4<u32>(4u))) - vec4<i32>(32));
  let sb = rd8(blk + 192u + h * 8u + quad * 2u + (l >> 4u));
  let sc = f32(bitcast<i32>(sb << 24u) >> 24u);
  return half(rd16(blk + 208u)) * sc * q;
}
