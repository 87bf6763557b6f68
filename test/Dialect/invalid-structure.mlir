// RUN: mlacc-opt %s --split-input-file --verify-diagnostics

// Ops whose operand/result count or attribute kind is wrong. Our `verify_invariants` leaves
// these to IRDL (which runs right after it and names the problem), except segment sizes,
// which IRDL does not check.

func.func @rms_norm$one_operand(%x: tensor<1x4x64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{op expects exactly 2 operands, but got 1}}
  %y = "mla.rms_norm"(%x) {eps = 1.0e-6 : f64} : (tensor<1x4x64xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// -----

func.func @rms_norm$missing_eps(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{'mla.rms_norm' op attribute "eps" is expected but not provided}}
  %y = "mla.rms_norm"(%x, %w) : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// -----

func.func @rms_norm$no_result(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) {
  // expected-error @+1 {{op expects exactly 1 results, but got 0}}
  "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<1x4x64xf32>, tensor<64xf32>) -> ()
  return
}

// -----

func.func @weight$missing_key() -> tensor<40x64xf32> {
  // expected-error @+1 {{'mlacc.weight' op attribute "key" is expected but not provided}}
  %w = "mlacc.weight"() : () -> tensor<40x64xf32>
  return %w : tensor<40x64xf32>
}

// -----

func.func @weight$integer_key() -> tensor<40x64xf32> {
  // expected-error @+1 {{expected base attribute 'builtin.string' but got 'builtin.integer'}}
  %w = "mlacc.weight"() {key = 3 : i64} : () -> tensor<40x64xf32>
  return %w : tensor<40x64xf32>
}

// -----

func.func @router$route_scale_is_a_string(%x: tensor<4x64xf32>, %gate: tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>) {
  // expected-error @+1 {{expected base attribute 'builtin.float' but got 'builtin.string'}}
  %w, %i = "moe.router"(%x, %gate) {
      score_func = "softmax", top_k = 2 : i64, n_groups = 1 : i64, topk_group = 1 : i64,
      group_score = "max", route_scale = "2.5", norm_topk_prob = true,
      operandSegmentSizes = array<i32: 1, 1, 0>}
    : (tensor<4x64xf32>, tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>)
  return %w, %i : tensor<4x2xf32>, tensor<4x2xi64>
}

// -----

func.func @quantize$block_shape_not_an_array(%x: tensor<4x256xf32>) -> (tensor<4x256xf8E4M3FN>, tensor<4x2xf32>) {
  // expected-error @+1 {{expected base attribute 'builtin.dense_array' but got 'builtin.integer'}}
  %q, %scale = "fp8.quantize"(%x) {block_shape = 128 : i64, pow2_scale = false}
    : (tensor<4x256xf32>) -> (tensor<4x256xf8E4M3FN>, tensor<4x2xf32>)
  return %q, %scale : tensor<4x256xf8E4M3FN>, tensor<4x2xf32>
}

// -----

func.func @dispatch$two_results(%x: tensor<4x64xf32>, %indices: tensor<4x2xi64>) -> (tensor<32x64xf32>, tensor<4x2xi64>) {
  // expected-error @+1 {{op expects exactly 3 results, but got 2}}
  %x_sorted, %row_of = "moe.dispatch"(%x, %indices) {num_experts = 8 : i64, block_size = 4 : i64}
    : (tensor<4x64xf32>, tensor<4x2xi64>) -> (tensor<32x64xf32>, tensor<4x2xi64>)
  return %x_sorted, %row_of : tensor<32x64xf32>, tensor<4x2xi64>
}

// -----

func.func @router$no_segment_sizes(%x: tensor<4x64xf32>, %gate: tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>) {
  // expected-error @+1 {{'moe.router' op needs the 'operandSegmentSizes' attribute (it has optional or variadic operands)}}
  %w, %i = "moe.router"(%x, %gate) {
      score_func = "softmax", top_k = 2 : i64, n_groups = 1 : i64, topk_group = 1 : i64,
      group_score = "max", route_scale = 2.5 : f64, norm_topk_prob = true}
    : (tensor<4x64xf32>, tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>)
  return %w, %i : tensor<4x2xf32>, tensor<4x2xi64>
}

// -----

// IRDL does not check result segment sizes; our verifier does.
func.func @attention$result_segments_three_entries(%x: tensor<1x4x64xf32>, %pos: tensor<1x4xi64>, %wq: tensor<96x64xf32>,
                        %wkv_a: tensor<40x64xf32>, %kv_norm: tensor<32xf32>,
                        %wkv_b: tensor<128x32xf32>, %wo: tensor<64x64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{attribute 'resultSegmentSizes' must have 2 entries, got 3}}
  %out = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq) {
      num_heads = 4 : i64, q_lora_rank = 0 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.2041241452 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0>,
      resultSegmentSizes = array<i32: 1, 0, 0>}
    : (tensor<1x4x64xf32>, tensor<1x4xi64>, tensor<40x64xf32>, tensor<32xf32>, tensor<128x32xf32>,
       tensor<64x64xf32>, tensor<96x64xf32>) -> tensor<1x4x64xf32>
  return %out : tensor<1x4x64xf32>
}

// -----

func.func @attention$result_segments_required_result_zero(%x: tensor<1x4x64xf32>, %pos: tensor<1x4xi64>, %wq: tensor<96x64xf32>,
                        %wkv_a: tensor<40x64xf32>, %kv_norm: tensor<32xf32>,
                        %wkv_b: tensor<128x32xf32>, %wo: tensor<64x64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{attribute 'resultSegmentSizes' entry 0 must be 1, got 0}}
  %out = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq) {
      num_heads = 4 : i64, q_lora_rank = 0 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.2041241452 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0>,
      resultSegmentSizes = array<i32: 0, 1>}
    : (tensor<1x4x64xf32>, tensor<1x4xi64>, tensor<40x64xf32>, tensor<32xf32>, tensor<128x32xf32>,
       tensor<64x64xf32>, tensor<96x64xf32>) -> tensor<1x4x64xf32>
  return %out : tensor<1x4x64xf32>
}

// -----

func.func @attention$result_segments_negative_entry(%x: tensor<1x4x64xf32>, %pos: tensor<1x4xi64>, %wq: tensor<96x64xf32>,
                        %wkv_a: tensor<40x64xf32>, %kv_norm: tensor<32xf32>,
                        %wkv_b: tensor<128x32xf32>, %wo: tensor<64x64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{attribute 'resultSegmentSizes' entry 1 must be 0 or 1, got -1}}
  %out = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq) {
      num_heads = 4 : i64, q_lora_rank = 0 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.2041241452 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0>,
      resultSegmentSizes = array<i32: 1, -1>}
    : (tensor<1x4x64xf32>, tensor<1x4xi64>, tensor<40x64xf32>, tensor<32xf32>, tensor<128x32xf32>,
       tensor<64x64xf32>, tensor<96x64xf32>) -> tensor<1x4x64xf32>
  return %out : tensor<1x4x64xf32>
}

// -----

func.func @attention$result_segments_i64(%x: tensor<1x4x64xf32>, %pos: tensor<1x4xi64>, %wq: tensor<96x64xf32>,
                        %wkv_a: tensor<40x64xf32>, %kv_norm: tensor<32xf32>,
                        %wkv_b: tensor<128x32xf32>, %wo: tensor<64x64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{attribute 'resultSegmentSizes' must be an array<i32: ...>, got array<i64: 1, 0>}}
  %out = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq) {
      num_heads = 4 : i64, q_lora_rank = 0 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.2041241452 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0>,
      resultSegmentSizes = array<i64: 1, 0>}
    : (tensor<1x4x64xf32>, tensor<1x4xi64>, tensor<40x64xf32>, tensor<32xf32>, tensor<128x32xf32>,
       tensor<64x64xf32>, tensor<96x64xf32>) -> tensor<1x4x64xf32>
  return %out : tensor<1x4x64xf32>
}
