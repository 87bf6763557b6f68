// RUN: mlacc-opt %s --split-input-file --verify-diagnostics

// Every user-facing verifier error of the `mla` ops. Shapes as in ops.mlir: H=4, dn=16, dr=8,
// dv=16, C=32, D=64.

func.func @rms_norm$weight_rank(%x: tensor<1x4x64xf32>, %w: tensor<64x1xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{'mla.rms_norm' op weight must have rank 1, got rank 2}}
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<1x4x64xf32>, tensor<64x1xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// -----

func.func @rms_norm$weight_size(%x: tensor<1x4x64xf32>, %w: tensor<32xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{weight size is 32, expected 64}}
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<1x4x64xf32>, tensor<32xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// -----

func.func @rms_norm$integer_input(%x: tensor<1x4x64xi64>, %w: tensor<64xf32>) -> tensor<1x4x64xi64> {
  // expected-error @+1 {{x must have element type bfloat16 or float16 or float32 or float64, got int64}}
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<1x4x64xi64>, tensor<64xf32>) -> tensor<1x4x64xi64>
  return %y : tensor<1x4x64xi64>
}

// -----

func.func @rms_norm$zero_eps(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{attribute 'eps' must be positive, got 0.0}}
  %y = "mla.rms_norm"(%x, %w) {eps = 0.0 : f64} : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// -----

func.func @rms_norm$eps_is_an_integer(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{expected base attribute 'builtin.float' but got 'builtin.integer'}}
  %y = "mla.rms_norm"(%x, %w) {eps = 1 : i64} : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// -----

func.func @rms_norm$wrong_result_type(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) -> tensor<1x4x64xbf16> {
  // expected-error @+1 {{result 'out' has type [1,4,64]xbfloat16, expected [1,4,64]xfloat32}}
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xbf16>
  return %y : tensor<1x4x64xbf16>
}

// -----

func.func @rms_norm$memref_operand(%x: memref<1x4x64xf32>, %w: tensor<64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{operand 'x' must be a ranked tensor}}
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (memref<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// -----

func.func @attention$wq_and_q_lora(%x: tensor<1x4x64xf32>, %pos: tensor<1x4xi64>, %wq: tensor<96x64xf32>,
                                   %wq_a: tensor<24x64xf32>, %q_norm: tensor<24xf32>, %wq_b: tensor<96x24xf32>,
                                   %wkv_a: tensor<40x64xf32>, %kv_norm: tensor<32xf32>,
                                   %wkv_b: tensor<128x32xf32>, %wo: tensor<64x64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{'wq_a', 'q_norm', 'wq_b' must be absent when q_lora_rank = 0}}
  %out = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq, %wq_a, %q_norm, %wq_b) {
      num_heads = 4 : i64, q_lora_rank = 0 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.2041241452 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0>,
      resultSegmentSizes = array<i32: 1, 0>}
    : (tensor<1x4x64xf32>, tensor<1x4xi64>, tensor<40x64xf32>, tensor<32xf32>, tensor<128x32xf32>,
       tensor<64x64xf32>, tensor<96x64xf32>, tensor<24x64xf32>, tensor<24xf32>, tensor<96x24xf32>)
    -> tensor<1x4x64xf32>
  return %out : tensor<1x4x64xf32>
}

// -----

func.func @attention$missing_wq(%x: tensor<1x4x64xf32>, %pos: tensor<1x4xi64>,
                                %wkv_a: tensor<40x64xf32>, %kv_norm: tensor<32xf32>,
                                %wkv_b: tensor<128x32xf32>, %wo: tensor<64x64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{'wq' is required when q_lora_rank = 0}}
  %out = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo) {
      num_heads = 4 : i64, q_lora_rank = 0 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.2041241452 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0>,
      resultSegmentSizes = array<i32: 1, 0>}
    : (tensor<1x4x64xf32>, tensor<1x4xi64>, tensor<40x64xf32>, tensor<32xf32>, tensor<128x32xf32>,
       tensor<64x64xf32>) -> tensor<1x4x64xf32>
  return %out : tensor<1x4x64xf32>
}

// -----

func.func @attention$q_lora_without_q_norm(%x: tensor<1x4x64xf32>, %pos: tensor<1x4xi64>,
                                           %wq_a: tensor<24x64xf32>, %wq_b: tensor<96x24xf32>,
                                           %wkv_a: tensor<40x64xf32>, %kv_norm: tensor<32xf32>,
                                           %wkv_b: tensor<128x32xf32>, %wo: tensor<64x64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{'wq_a', 'q_norm' and 'wq_b' are required when q_lora_rank > 0}}
  %out = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq_a, %wq_b) {
      num_heads = 4 : i64, q_lora_rank = 24 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.2041241452 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0>,
      resultSegmentSizes = array<i32: 1, 0>}
    : (tensor<1x4x64xf32>, tensor<1x4xi64>, tensor<40x64xf32>, tensor<32xf32>, tensor<128x32xf32>,
       tensor<64x64xf32>, tensor<24x64xf32>, tensor<96x24xf32>) -> tensor<1x4x64xf32>
  return %out : tensor<1x4x64xf32>
}

// -----

func.func @attention$wkv_b_rows(%x: tensor<1x4x64xf32>, %pos: tensor<1x4xi64>, %wq: tensor<96x64xf32>,
                                %wkv_a: tensor<40x64xf32>, %kv_norm: tensor<32xf32>,
                                %wkv_b: tensor<96x32xf32>, %wo: tensor<64x64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{wkv_b rows is 96, expected 128}}
  %out = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq) {
      num_heads = 4 : i64, q_lora_rank = 0 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.2041241452 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0>,
      resultSegmentSizes = array<i32: 1, 0>}
    : (tensor<1x4x64xf32>, tensor<1x4xi64>, tensor<40x64xf32>, tensor<32xf32>, tensor<96x32xf32>,
       tensor<64x64xf32>, tensor<96x64xf32>) -> tensor<1x4x64xf32>
  return %out : tensor<1x4x64xf32>
}

// -----

func.func @attention$kv_cache_entry_size(%x: tensor<1x1x64xf32>, %pos: tensor<1x1xi64>, %wq: tensor<96x64xf32>,
                                         %wkv_a: tensor<40x64xf32>, %kv_norm: tensor<32xf32>,
                                         %wkv_b: tensor<128x32xf32>, %wo: tensor<64x64xf32>,
                                         %cache: tensor<1x16x48xf32>) -> (tensor<1x1x64xf32>, tensor<1x16x48xf32>) {
  // expected-error @+1 {{kv_cache entry size (kv_lora_rank + qk_rope_head_dim) is 48, expected 40}}
  %out, %new_cache = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq, %cache) {
      num_heads = 4 : i64, q_lora_rank = 0 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.2041241452 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0>,
      resultSegmentSizes = array<i32: 1, 1>}
    : (tensor<1x1x64xf32>, tensor<1x1xi64>, tensor<40x64xf32>, tensor<32xf32>, tensor<128x32xf32>,
       tensor<64x64xf32>, tensor<96x64xf32>, tensor<1x16x48xf32>) -> (tensor<1x1x64xf32>, tensor<1x16x48xf32>)
  return %out, %new_cache : tensor<1x1x64xf32>, tensor<1x16x48xf32>
}

// -----

func.func @attention$new_cache_without_kv_cache(%x: tensor<1x4x64xf32>, %pos: tensor<1x4xi64>, %wq: tensor<96x64xf32>,
                                                %wkv_a: tensor<40x64xf32>, %kv_norm: tensor<32xf32>,
                                                %wkv_b: tensor<128x32xf32>, %wo: tensor<64x64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{result 'new_cache' must not be present here}}
  %out, %new_cache = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq) {
      num_heads = 4 : i64, q_lora_rank = 0 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.2041241452 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0>,
      resultSegmentSizes = array<i32: 1, 1>}
    : (tensor<1x4x64xf32>, tensor<1x4xi64>, tensor<40x64xf32>, tensor<32xf32>, tensor<128x32xf32>,
       tensor<64x64xf32>, tensor<96x64xf32>) -> (tensor<1x4x64xf32>, tensor<1x16x40xf32>)
  return %out : tensor<1x4x64xf32>
}

// -----

func.func @attention$float_positions(%x: tensor<1x4x64xf32>, %pos: tensor<1x4xf32>, %wq: tensor<96x64xf32>,
                                     %wkv_a: tensor<40x64xf32>, %kv_norm: tensor<32xf32>,
                                     %wkv_b: tensor<128x32xf32>, %wo: tensor<64x64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{positions must have element type int32 or int64, got float32}}
  %out = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq) {
      num_heads = 4 : i64, q_lora_rank = 0 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.2041241452 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0>,
      resultSegmentSizes = array<i32: 1, 0>}
    : (tensor<1x4x64xf32>, tensor<1x4xf32>, tensor<40x64xf32>, tensor<32xf32>, tensor<128x32xf32>,
       tensor<64x64xf32>, tensor<96x64xf32>) -> tensor<1x4x64xf32>
  return %out : tensor<1x4x64xf32>
}

// -----

func.func @attention$unknown_rope_layout(%x: tensor<1x4x64xf32>, %pos: tensor<1x4xi64>, %wq: tensor<96x64xf32>,
                                         %wkv_a: tensor<40x64xf32>, %kv_norm: tensor<32xf32>,
                                         %wkv_b: tensor<128x32xf32>, %wo: tensor<64x64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{rope layout must be one of interleaved, rotate_half, got 'neox'}}
  %out = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq) {
      num_heads = 4 : i64, q_lora_rank = 0 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.2041241452 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "neox", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0>,
      resultSegmentSizes = array<i32: 1, 0>}
    : (tensor<1x4x64xf32>, tensor<1x4xi64>, tensor<40x64xf32>, tensor<32xf32>, tensor<128x32xf32>,
       tensor<64x64xf32>, tensor<96x64xf32>) -> tensor<1x4x64xf32>
  return %out : tensor<1x4x64xf32>
}

// -----

func.func @attention$odd_rope_dim(%x: tensor<1x4x64xf32>, %pos: tensor<1x4xi64>, %wq: tensor<92x64xf32>,
                                  %wkv_a: tensor<39x64xf32>, %kv_norm: tensor<32xf32>,
                                  %wkv_b: tensor<128x32xf32>, %wo: tensor<64x64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{rotary dimension must be even, got 7}}
  %out = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq) {
      num_heads = 4 : i64, q_lora_rank = 0 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 7 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.2041241452 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0>,
      resultSegmentSizes = array<i32: 1, 0>}
    : (tensor<1x4x64xf32>, tensor<1x4xi64>, tensor<39x64xf32>, tensor<32xf32>, tensor<128x32xf32>,
       tensor<64x64xf32>, tensor<92x64xf32>) -> tensor<1x4x64xf32>
  return %out : tensor<1x4x64xf32>
}

// -----

func.func @rotary_embedding$missing_rope_key(%k_pe: tensor<1x4x8xf32>, %pos: tensor<1x4xi64>) -> tensor<1x4x8xf32> {
  // expected-error @+1 {{attribute 'rope' is missing key(s) truncate}}
  %rot = "mla.rotary_embedding"(%k_pe, %pos) {
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64}}
    : (tensor<1x4x8xf32>, tensor<1x4xi64>) -> tensor<1x4x8xf32>
  return %rot : tensor<1x4x8xf32>
}

// -----

func.func @rotary_embedding$theta_is_a_string(%k_pe: tensor<1x4x8xf32>, %pos: tensor<1x4xi64>) -> tensor<1x4x8xf32> {
  // expected-error @+1 {{rope key 'theta' has the wrong kind of value: '10000'}}
  %rot = "mla.rotary_embedding"(%k_pe, %pos) {
      rope = {layout = "interleaved", theta = "10000", factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true}}
    : (tensor<1x4x8xf32>, tensor<1x4xi64>) -> tensor<1x4x8xf32>
  return %rot : tensor<1x4x8xf32>
}

// -----

func.func @rotary_embedding$yarn_factor_below_one(%k_pe: tensor<1x4x8xf32>, %pos: tensor<1x4xi64>) -> tensor<1x4x8xf32> {
  // expected-error @+1 {{rope needs theta > 0, factor >= 1 and original_seq_len > 0}}
  %rot = "mla.rotary_embedding"(%k_pe, %pos) {
      rope = {layout = "rotate_half", theta = 10000.0 : f64, factor = 0.5 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true}}
    : (tensor<1x4x8xf32>, tensor<1x4xi64>) -> tensor<1x4x8xf32>
  return %rot : tensor<1x4x8xf32>
}

// -----

func.func @rotary_embedding$rope_not_a_dictionary(%k_pe: tensor<1x4x8xf32>, %pos: tensor<1x4xi64>) -> tensor<1x4x8xf32> {
  // expected-error @+1 {{expected base attribute 'builtin.dictionary' but got 'builtin.string'}}
  %rot = "mla.rotary_embedding"(%k_pe, %pos) {rope = "interleaved"}
    : (tensor<1x4x8xf32>, tensor<1x4xi64>) -> tensor<1x4x8xf32>
  return %rot : tensor<1x4x8xf32>
}

// -----

func.func @rotary_embedding$rank_2(%x: tensor<4x8xf32>, %pos: tensor<1x4xi64>) -> tensor<4x8xf32> {
  // expected-error @+1 {{x must have rank 3 or 4, got rank 2}}
  %rot = "mla.rotary_embedding"(%x, %pos) {
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true}}
    : (tensor<4x8xf32>, tensor<1x4xi64>) -> tensor<4x8xf32>
  return %rot : tensor<4x8xf32>
}

// -----

func.func @rotary_embedding$positions_length(%k_pe: tensor<1x4x8xf32>, %pos: tensor<1x5xi64>) -> tensor<1x4x8xf32> {
  // expected-error @+1 {{positions sequence length is 5, expected 4}}
  %rot = "mla.rotary_embedding"(%k_pe, %pos) {
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true}}
    : (tensor<1x4x8xf32>, tensor<1x5xi64>) -> tensor<1x4x8xf32>
  return %rot : tensor<1x4x8xf32>
}

// -----

func.func @absorb_query$heads(%q_nope: tensor<1x4x2x16xf32>, %wkv_b: tensor<128x32xf32>) -> tensor<1x4x4x32xf32> {
  // expected-error @+1 {{q_nope heads is 2, expected 4}}
  %q = "mla.absorb_query"(%q_nope, %wkv_b) {num_heads = 4 : i64, qk_nope_head_dim = 16 : i64, v_head_dim = 16 : i64}
    : (tensor<1x4x2x16xf32>, tensor<128x32xf32>) -> tensor<1x4x4x32xf32>
  return %q : tensor<1x4x4x32xf32>
}

// -----

func.func @absorb_query$zero_heads(%q_nope: tensor<1x4x4x16xf32>, %wkv_b: tensor<128x32xf32>) -> tensor<1x4x4x32xf32> {
  // expected-error @+1 {{attribute 'num_heads' must be positive, got 0}}
  %q = "mla.absorb_query"(%q_nope, %wkv_b) {num_heads = 0 : i64, qk_nope_head_dim = 16 : i64, v_head_dim = 16 : i64}
    : (tensor<1x4x4x16xf32>, tensor<128x32xf32>) -> tensor<1x4x4x32xf32>
  return %q : tensor<1x4x4x32xf32>
}

// -----

func.func @absorb_output$wkv_b_columns(%ctx: tensor<1x4x4x32xf32>, %wkv_b: tensor<128x24xf32>) -> tensor<1x4x4x16xf32> {
  // expected-error @+1 {{wkv_b columns is 24, expected 32}}
  %o = "mla.absorb_output"(%ctx, %wkv_b) {num_heads = 4 : i64, qk_nope_head_dim = 16 : i64, v_head_dim = 16 : i64}
    : (tensor<1x4x4x32xf32>, tensor<128x24xf32>) -> tensor<1x4x4x16xf32>
  return %o : tensor<1x4x4x16xf32>
}

// -----

func.func @kv_expand$latent_rank(%latent: tensor<16x32xf32>, %wkv_b: tensor<128x32xf32>) -> (tensor<1x16x4x16xf32>, tensor<1x16x4x16xf32>) {
  // expected-error @+1 {{latent must have rank 3, got rank 2}}
  %k, %v = "mla.kv_expand"(%latent, %wkv_b) {num_heads = 4 : i64, qk_nope_head_dim = 16 : i64, v_head_dim = 16 : i64}
    : (tensor<16x32xf32>, tensor<128x32xf32>) -> (tensor<1x16x4x16xf32>, tensor<1x16x4x16xf32>)
  return %k, %v : tensor<1x16x4x16xf32>, tensor<1x16x4x16xf32>
}

// -----

func.func @latent_attention$q_latent_dim(%q_latent: tensor<1x1x4x16xf32>, %q_pe: tensor<1x1x4x8xf32>,
                                         %cache: tensor<1x16x40xf32>, %pos: tensor<1x1xi64>) -> tensor<1x1x4x16xf32> {
  // expected-error @+1 {{q_latent last dim (kv_lora_rank) is 16, expected 32}}
  %ctx = "mla.latent_attention"(%q_latent, %q_pe, %cache, %pos) {operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 0, 0>, rope_layout = "none", kv_lora_rank = 32 : i64, softmax_scale = 0.25 : f64}
    : (tensor<1x1x4x16xf32>, tensor<1x1x4x8xf32>, tensor<1x16x40xf32>, tensor<1x1xi64>) -> tensor<1x1x4x16xf32>
  return %ctx : tensor<1x1x4x16xf32>
}

// -----

func.func @latent_attention$cache_entry(%q_latent: tensor<1x1x4x32xf32>, %q_pe: tensor<1x1x4x8xf32>,
                                        %cache: tensor<1x16x32xf32>, %pos: tensor<1x1xi64>) -> tensor<1x1x4x32xf32> {
  // expected-error @+1 {{kv_cache entry size (kv_lora_rank + qk_rope_head_dim) is 32, expected 40}}
  %ctx = "mla.latent_attention"(%q_latent, %q_pe, %cache, %pos) {operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 0, 0>, rope_layout = "none", kv_lora_rank = 32 : i64, softmax_scale = 0.25 : f64}
    : (tensor<1x1x4x32xf32>, tensor<1x1x4x8xf32>, tensor<1x16x32xf32>, tensor<1x1xi64>) -> tensor<1x1x4x32xf32>
  return %ctx : tensor<1x1x4x32xf32>
}

// -----

func.func @latent_attention$negative_scale(%q_latent: tensor<1x1x4x32xf32>, %q_pe: tensor<1x1x4x8xf32>,
                                           %cache: tensor<1x16x40xf32>, %pos: tensor<1x1xi64>) -> tensor<1x1x4x32xf32> {
  // expected-error @+1 {{attribute 'softmax_scale' must be positive, got -0.25}}
  %ctx = "mla.latent_attention"(%q_latent, %q_pe, %cache, %pos) {operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 0, 0>, rope_layout = "none", kv_lora_rank = 32 : i64, softmax_scale = -0.25 : f64}
    : (tensor<1x1x4x32xf32>, tensor<1x1x4x8xf32>, tensor<1x16x40xf32>, tensor<1x1xi64>) -> tensor<1x1x4x32xf32>
  return %ctx : tensor<1x1x4x32xf32>
}

// -----

func.func @decoupled_attention$k_pe_dim(%q_nope: tensor<1x4x4x16xf32>, %q_pe: tensor<1x4x4x8xf32>,
                                        %k_nope: tensor<1x16x4x16xf32>, %k_pe: tensor<1x16x4xf32>,
                                        %v: tensor<1x16x4x16xf32>, %q_pos: tensor<1x4xi64>,
                                        %k_pos: tensor<1x16xi64>) -> tensor<1x4x4x16xf32> {
  // expected-error @+1 {{k_pe rope dim is 4, expected 8}}
  %o = "mla.decoupled_attention"(%q_nope, %q_pe, %k_nope, %k_pe, %v, %q_pos, %k_pos) {operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0>, rope_layout = "none", softmax_scale = 0.25 : f64}
    : (tensor<1x4x4x16xf32>, tensor<1x4x4x8xf32>, tensor<1x16x4x16xf32>, tensor<1x16x4xf32>,
       tensor<1x16x4x16xf32>, tensor<1x4xi64>, tensor<1x16xi64>) -> tensor<1x4x4x16xf32>
  return %o : tensor<1x4x4x16xf32>
}

// -----

func.func @cache_update$entries_dtype(%cache: tensor<1x16x40xf32>, %entries: tensor<1x4x40xbf16>, %pos: tensor<1x4xi64>) -> tensor<1x16x40xf32> {
  // expected-error @+1 {{entries must have element type float32, got bfloat16}}
  %new = "mla.cache_update"(%cache, %entries, %pos) {operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0>, rope_layout = "none"} : (tensor<1x16x40xf32>, tensor<1x4x40xbf16>, tensor<1x4xi64>) -> tensor<1x16x40xf32>
  return %new : tensor<1x16x40xf32>
}

// -----

func.func @cache_update$positions_length(%cache: tensor<1x16x40xf32>, %entries: tensor<1x4x40xf32>, %pos: tensor<1x1xi64>) -> tensor<1x16x40xf32> {
  // expected-error @+1 {{positions length is 1, expected 4}}
  %new = "mla.cache_update"(%cache, %entries, %pos) {operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0>, rope_layout = "none"} : (tensor<1x16x40xf32>, tensor<1x4x40xf32>, tensor<1x1xi64>) -> tensor<1x16x40xf32>
  return %new : tensor<1x16x40xf32>
}

// -----

func.func @attention$extra_optional_operand(%x: tensor<1x4x64xf32>, %pos: tensor<1x4xi64>, %wq: tensor<96x64xf32>,
                                            %wkv_a: tensor<40x64xf32>, %kv_norm: tensor<32xf32>,
                                            %wkv_b: tensor<128x32xf32>, %wo: tensor<64x64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{element 6 in 'operandSegmentSizes' attribute must be equal to 0 or 1}}
  %out = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq, %wq) {
      num_heads = 4 : i64, q_lora_rank = 0 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.2041241452 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 2, 0, 0, 0, 0, 0, 0>,
      resultSegmentSizes = array<i32: 1, 0>}
    : (tensor<1x4x64xf32>, tensor<1x4xi64>, tensor<40x64xf32>, tensor<32xf32>, tensor<128x32xf32>,
       tensor<64x64xf32>, tensor<96x64xf32>, tensor<96x64xf32>) -> tensor<1x4x64xf32>
  return %out : tensor<1x4x64xf32>
}

// -----

func.func @attention$segment_sizes_do_not_add_up(%x: tensor<1x4x64xf32>, %pos: tensor<1x4xi64>, %wq: tensor<96x64xf32>,
                                                 %wkv_a: tensor<40x64xf32>, %kv_norm: tensor<32xf32>,
                                                 %wkv_b: tensor<128x32xf32>, %wo: tensor<64x64xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{sum of elements in 'operandSegmentSizes' attribute must be equal to the number of operands}}
  %out = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq) {
      num_heads = 4 : i64, q_lora_rank = 0 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.2041241452 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0>,
      resultSegmentSizes = array<i32: 1, 0>}
    : (tensor<1x4x64xf32>, tensor<1x4xi64>, tensor<40x64xf32>, tensor<32xf32>, tensor<128x32xf32>,
       tensor<64x64xf32>, tensor<96x64xf32>) -> tensor<1x4x64xf32>
  return %out : tensor<1x4x64xf32>
}

// -----

func.func @rope_tables$odd_dim() -> (tensor<16x3xf32>, tensor<16x3xf32>) {
  // expected-error @+1 {{attribute 'dim' (rotary dimension) must be even, got 7}}
  %cos, %sin = "mla.rope_tables"() {rope = {beta_fast = 3.200000e+01 : f64, beta_slow = 1.000000e+00 : f64, cos_sin_scale = 1.000000e+00 : f64, factor = 4.000000e+01 : f64, layout = "interleaved", original_seq_len = 4096 : i64, theta = 1.000000e+04 : f64, truncate = true}, dim = 7 : i64, max_positions = 16 : i64} : () -> (tensor<16x3xf32>, tensor<16x3xf32>)
  return %cos, %sin : tensor<16x3xf32>, tensor<16x3xf32>
}

// -----

func.func @latent_attention$tables_without_layout(%q_latent: tensor<1x1x4x32xf32>, %q_pe: tensor<1x1x4x8xf32>,
    %cache: tensor<1x16x40xf32>, %pos: tensor<1x1xi64>, %cos: tensor<16x4xf32>, %sin: tensor<16x4xf32>) -> tensor<1x1x4x32xf32> {
  // expected-error @+1 {{'rope_cos'/'rope_sin' need rope_layout interleaved or rotate_half}}
  %ctx = "mla.latent_attention"(%q_latent, %q_pe, %cache, %pos, %cos, %sin) {operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0>, rope_layout = "none", kv_lora_rank = 32 : i64, softmax_scale = 0.25 : f64}
    : (tensor<1x1x4x32xf32>, tensor<1x1x4x8xf32>, tensor<1x16x40xf32>, tensor<1x1xi64>, tensor<16x4xf32>, tensor<16x4xf32>) -> tensor<1x1x4x32xf32>
  return %ctx : tensor<1x1x4x32xf32>
}

// -----

func.func @latent_attention$table_width(%q_latent: tensor<1x1x4x32xf32>, %q_pe: tensor<1x1x4x8xf32>,
    %cache: tensor<1x16x40xf32>, %pos: tensor<1x1xi64>, %cos: tensor<16x3xf32>, %sin: tensor<16x3xf32>) -> tensor<1x1x4x32xf32> {
  // expected-error @+1 {{rope_cos has 3 columns, expected 4 (rotary dim / 2)}}
  %ctx = "mla.latent_attention"(%q_latent, %q_pe, %cache, %pos, %cos, %sin) {operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0>, rope_layout = "interleaved", kv_lora_rank = 32 : i64, softmax_scale = 0.25 : f64}
    : (tensor<1x1x4x32xf32>, tensor<1x1x4x8xf32>, tensor<1x16x40xf32>, tensor<1x1xi64>, tensor<16x3xf32>, tensor<16x3xf32>) -> tensor<1x1x4x32xf32>
  return %ctx : tensor<1x1x4x32xf32>
}

// -----

func.func @cache_update$paged_batch(%pool: tensor<9x4x40xf32>, %entries: tensor<2x3x40xf32>, %pos: tensor<2x3xi64>, %table: tensor<3x4xi32>) -> tensor<9x4x40xf32> {
  // expected-error @+1 {{entries batch size is 2, expected 3}}
  %new = "mla.cache_update"(%pool, %entries, %pos, %table) {operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 1>, rope_layout = "none"} : (tensor<9x4x40xf32>, tensor<2x3x40xf32>, tensor<2x3xi64>, tensor<3x4xi32>) -> tensor<9x4x40xf32>
  return %new : tensor<9x4x40xf32>
}

// -----

func.func @cache_gather$float_table(%pool: tensor<9x4x40xf32>, %table: tensor<2x4xf32>) -> tensor<2x16x40xf32> {
  // expected-error @+1 {{block_table must have element type}}
  %out = "mla.cache_gather"(%pool, %table) : (tensor<9x4x40xf32>, tensor<2x4xf32>) -> tensor<2x16x40xf32>
  return %out : tensor<2x16x40xf32>
}

// -----

func.func @cache_gather$wrong_slots(%pool: tensor<9x4x40xf32>, %table: tensor<2x4xi32>) -> tensor<2x12x40xf32> {
  // expected-error @+1 {{result 'out' has type [2,12,40]xfloat32, expected [2,16,40]xfloat32}}
  %out = "mla.cache_gather"(%pool, %table) : (tensor<9x4x40xf32>, tensor<2x4xi32>) -> tensor<2x12x40xf32>
  return %out : tensor<2x12x40xf32>
}
