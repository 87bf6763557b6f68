// RUN: mlacc-opt %s --split-input-file --verify-diagnostics

// Values no computation can use: non-finite float attributes, weights without a static
// shape, empty tensors. Each is rejected by the verifier of every graph op.

func.func @rms_norm$eps_inf(%x: tensor<4x32xf32>, %w: tensor<32xf32>) -> tensor<4x32xf32> {
  // expected-error @+1 {{'mla.rms_norm' op attribute 'eps' must be finite, got inf}}
  %y = "mla.rms_norm"(%x, %w) {eps = 0x7FF0000000000000 : f64} : (tensor<4x32xf32>, tensor<32xf32>) -> tensor<4x32xf32>
  return %y : tensor<4x32xf32>
}

// -----

func.func @rms_norm$eps_nan(%x: tensor<4x32xf32>, %w: tensor<32xf32>) -> tensor<4x32xf32> {
  // expected-error @+1 {{'mla.rms_norm' op attribute 'eps' must be finite, got nan}}
  %y = "mla.rms_norm"(%x, %w) {eps = 0x7FF8000000000000 : f64} : (tensor<4x32xf32>, tensor<32xf32>) -> tensor<4x32xf32>
  return %y : tensor<4x32xf32>
}

// -----

func.func @router$route_scale_inf(%x: tensor<4x64xf32>, %gate: tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>) {
  // expected-error @+1 {{'moe.router' op attribute 'route_scale' must be finite, got -inf}}
  %w, %i = "moe.router"(%x, %gate) {
      score_func = "softmax", top_k = 2 : i64, n_groups = 1 : i64, topk_group = 1 : i64,
      group_score = "max", route_scale = 0xFFF0000000000000 : f64, norm_topk_prob = false,
      operandSegmentSizes = array<i32: 1, 1, 0>}
    : (tensor<4x64xf32>, tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>)
  return %w, %i : tensor<4x2xf32>, tensor<4x2xi64>
}

// -----

// Nested dictionaries too (the rope parameters).
func.func @rope_tables$theta_inf() -> (tensor<16x4xf32>, tensor<16x4xf32>) {
  // expected-error @+1 {{'mla.rope_tables' op attribute 'rope.theta' must be finite, got inf}}
  %cos, %sin = "mla.rope_tables"() {
      rope = {layout = "interleaved", theta = 0x7FF0000000000000 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      dim = 8 : i64, max_positions = 16 : i64} : () -> (tensor<16x4xf32>, tensor<16x4xf32>)
  return %cos, %sin : tensor<16x4xf32>, tensor<16x4xf32>
}

// -----

// Token dimensions may be dynamic; the normalized dimension (the weight's size) may not.
func.func @rms_norm$dynamic_weight(%x: tensor<4x?xf32>, %w: tensor<?xf32>) -> tensor<4x?xf32> {
  // expected-error @+1 {{'mla.rms_norm' op weight must have a static shape, got [?]xfloat32}}
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<4x?xf32>, tensor<?xf32>) -> tensor<4x?xf32>
  return %y : tensor<4x?xf32>
}

// -----

func.func @router$dynamic_gate(%x: tensor<4x64xf32>, %gate: tensor<?x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>) {
  // expected-error @+1 {{'moe.router' op weight must have a static shape, got [?,64]xfloat32}}
  %w, %i = "moe.router"(%x, %gate) {
      score_func = "softmax", top_k = 2 : i64, n_groups = 1 : i64, topk_group = 1 : i64,
      group_score = "max", route_scale = 1.0 : f64, norm_topk_prob = false,
      operandSegmentSizes = array<i32: 1, 1, 0>}
    : (tensor<4x64xf32>, tensor<?x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>)
  return %w, %i : tensor<4x2xf32>, tensor<4x2xi64>
}

// -----

func.func @rms_norm$zero_tokens(%x: tensor<0x32xf32>, %w: tensor<32xf32>) -> tensor<0x32xf32> {
  // expected-error @+1 {{'mla.rms_norm' op operand 'x' has a zero-sized dimension ([0,32]xfloat32)}}
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<0x32xf32>, tensor<32xf32>) -> tensor<0x32xf32>
  return %y : tensor<0x32xf32>
}

// -----

func.func @quantize$zero_channels(%x: tensor<4x0xf32>) -> (tensor<4x0xf8E4M3FN>, tensor<4x0xf32>) {
  // expected-error @+1 {{'fp8.quantize' op operand 'x' has a zero-sized dimension ([4,0]xfloat32)}}
  %q, %scale = "fp8.quantize"(%x) {block_shape = array<i64: 128>, pow2_scale = false}
    : (tensor<4x0xf32>) -> (tensor<4x0xf8E4M3FN>, tensor<4x0xf32>)
  return %q, %scale : tensor<4x0xf8E4M3FN>, tensor<4x0xf32>
}
