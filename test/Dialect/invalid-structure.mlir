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
