// RUN: mlacc-opt %s | mlacc-opt | filecheck %s
// RUN: mlacc-opt %s --mlir-print-op-generic | mlacc-opt | filecheck %s

// Round trip of every `mla` op. DeepSeek-V3-like small shapes: batch B=1, new tokens S=4,
// cache T=16, heads H=4, nope/rope/value head dims dn=16, dr=8, dv=16, kv_lora_rank C=32,
// q_lora_rank 24, model dim D=64.

// CHECK-LABEL: func.func @attention$wq
// CHECK-SAME: (%[[X:[^:]+]]: tensor<1x4x64xf32>, %[[POS:[^:]+]]: tensor<1x4xi64>, %[[WQ:[^:]+]]: tensor<96x64xf32>, %[[WKV_A:[^:]+]]: tensor<40x64xf32>, %[[KV_NORM:[^:]+]]: tensor<32xf32>, %[[WKV_B:[^:]+]]: tensor<128x32xf32>, %[[WO:[^:]+]]: tensor<64x64xf32>)
// CHECK: %[[OUT:.*]] = "mla.attention"(%[[X]], %[[POS]], %[[WKV_A]], %[[KV_NORM]], %[[WKV_B]], %[[WO]], %[[WQ]])
// CHECK-SAME: num_heads = 4 : i64
// CHECK-SAME: operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0>
// CHECK-SAME: q_lora_rank = 0 : i64
// CHECK-SAME: resultSegmentSizes = array<i32: 1, 0>
// CHECK-SAME: layout = "interleaved"
// CHECK-SAME: -> tensor<1x4x64xf32>
// CHECK: return %[[OUT]]
func.func @attention$wq(%x: tensor<1x4x64xf32>, %pos: tensor<1x4xi64>, %wq: tensor<96x64xf32>,
                        %wkv_a: tensor<40x64xf32>, %kv_norm: tensor<32xf32>,
                        %wkv_b: tensor<128x32xf32>, %wo: tensor<64x64xf32>) -> tensor<1x4x64xf32> {
  %out = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq) {
      num_heads = 4 : i64, q_lora_rank = 0 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.2041241452 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0>,
      resultSegmentSizes = array<i32: 1, 0>}
    : (tensor<1x4x64xf32>, tensor<1x4xi64>, tensor<40x64xf32>, tensor<32xf32>, tensor<128x32xf32>,
       tensor<64x64xf32>, tensor<96x64xf32>) -> tensor<1x4x64xf32>
  return %out : tensor<1x4x64xf32>
}

// CHECK-LABEL: func.func @attention$q_lora
// CHECK-SAME: %[[WQ_A:[^:]+]]: tensor<24x64xf32>, %[[Q_NORM:[^:]+]]: tensor<24xf32>, %[[WQ_B:[^:]+]]: tensor<96x24xf32>
// CHECK: %[[OUT:.*]] = "mla.attention"({{.*}}, %[[WQ_A]], %[[Q_NORM]], %[[WQ_B]])
// CHECK-SAME: operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0>
// CHECK-SAME: q_lora_rank = 24 : i64
// CHECK-SAME: rope = {beta_fast = 3.200000e+01 : f64, beta_slow = 1.000000e+00 : f64, cos_sin_scale = 1.000000e+00 : f64, factor = 1.000000e+00 : f64, layout = "interleaved", original_seq_len = 4096 : i64, theta = 1.000000e+04 : f64, truncate = true}
// CHECK: return %[[OUT]]
func.func @attention$q_lora(%x: tensor<1x4x64xf32>, %pos: tensor<1x4xi64>,
                            %wq_a: tensor<24x64xf32>, %q_norm: tensor<24xf32>, %wq_b: tensor<96x24xf32>,
                            %wkv_a: tensor<40x64xf32>, %kv_norm: tensor<32xf32>,
                            %wkv_b: tensor<128x32xf32>, %wo: tensor<64x64xf32>) -> tensor<1x4x64xf32> {
  %out = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq_a, %q_norm, %wq_b) {
      num_heads = 4 : i64, q_lora_rank = 24 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.2041241452 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0>,
      resultSegmentSizes = array<i32: 1, 0>}
    : (tensor<1x4x64xf32>, tensor<1x4xi64>, tensor<40x64xf32>, tensor<32xf32>, tensor<128x32xf32>,
       tensor<64x64xf32>, tensor<24x64xf32>, tensor<24xf32>, tensor<96x24xf32>) -> tensor<1x4x64xf32>
  return %out : tensor<1x4x64xf32>
}

// Decode step with the latent cache (T=16 slots of C + dr = 40 values) and YaRN rope in the
// rotate-half layout of Hugging Face models: two results, the output and the updated cache.
// CHECK-LABEL: func.func @attention$q_lora_kv_cache_yarn
// CHECK-SAME: %[[CACHE:[^:]+]]: tensor<1x16x40xf32>)
// CHECK: %[[RES:.*]]:2 = "mla.attention"({{.*}}, %[[CACHE]])
// CHECK-SAME: operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0>
// CHECK-SAME: resultSegmentSizes = array<i32: 1, 1>
// CHECK-SAME: factor = 4.000000e+00 : f64, layout = "rotate_half", original_seq_len = 16 : i64
// CHECK-SAME: -> (tensor<1x1x64xf32>, tensor<1x16x40xf32>)
// CHECK: return %[[RES]]#0, %[[RES]]#1
func.func @attention$q_lora_kv_cache_yarn(
    %x: tensor<1x1x64xf32>, %pos: tensor<1x1xi64>,
    %wq_a: tensor<24x64xf32>, %q_norm: tensor<24xf32>, %wq_b: tensor<96x24xf32>,
    %wkv_a: tensor<40x64xf32>, %kv_norm: tensor<32xf32>, %wkv_b: tensor<128x32xf32>,
    %wo: tensor<64x64xf32>, %cache: tensor<1x16x40xf32>)
    -> (tensor<1x1x64xf32>, tensor<1x16x40xf32>) {
  %out, %new_cache = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq_a, %q_norm, %wq_b, %cache) {
      num_heads = 4 : i64, q_lora_rank = 24 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.25 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "rotate_half", theta = 10000.0 : f64, factor = 4.0 : f64,
              original_seq_len = 16 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.1386 : f64, truncate = false},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0>,
      resultSegmentSizes = array<i32: 1, 1>}
    : (tensor<1x1x64xf32>, tensor<1x1xi64>, tensor<40x64xf32>, tensor<32xf32>, tensor<128x32xf32>,
       tensor<64x64xf32>, tensor<24x64xf32>, tensor<24xf32>, tensor<96x24xf32>, tensor<1x16x40xf32>)
    -> (tensor<1x1x64xf32>, tensor<1x16x40xf32>)
  return %out, %new_cache : tensor<1x1x64xf32>, tensor<1x16x40xf32>
}

// The frontend's spelling: torch-mlir value tensors.
// CHECK-LABEL: func.func @attention$wq_kv_cache_vtensor
// CHECK: "mla.attention"
// CHECK-SAME: -> (!torch.vtensor<[2,1,64],bf16>, !torch.vtensor<[2,16,40],bf16>)
func.func @attention$wq_kv_cache_vtensor(
    %x: !torch.vtensor<[2,1,64],bf16>, %pos: !torch.vtensor<[2,1],si64>,
    %wq: !torch.vtensor<[96,64],bf16>, %wkv_a: !torch.vtensor<[40,64],bf16>,
    %kv_norm: !torch.vtensor<[32],bf16>, %wkv_b: !torch.vtensor<[128,32],bf16>,
    %wo: !torch.vtensor<[64,64],bf16>, %cache: !torch.vtensor<[2,16,40],bf16>)
    -> (!torch.vtensor<[2,1,64],bf16>, !torch.vtensor<[2,16,40],bf16>) {
  %out, %new_cache = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq, %cache) {
      num_heads = 4 : i64, q_lora_rank = 0 : i64, kv_lora_rank = 32 : i64,
      qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64,
      softmax_scale = 0.2041241452 : f64, eps = 1.0e-6 : f64,
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true},
      operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0>,
      resultSegmentSizes = array<i32: 1, 1>}
    : (!torch.vtensor<[2,1,64],bf16>, !torch.vtensor<[2,1],si64>, !torch.vtensor<[40,64],bf16>,
       !torch.vtensor<[32],bf16>, !torch.vtensor<[128,32],bf16>, !torch.vtensor<[64,64],bf16>,
       !torch.vtensor<[96,64],bf16>, !torch.vtensor<[2,16,40],bf16>)
    -> (!torch.vtensor<[2,1,64],bf16>, !torch.vtensor<[2,16,40],bf16>)
  return %out, %new_cache : !torch.vtensor<[2,1,64],bf16>, !torch.vtensor<[2,16,40],bf16>
}

// CHECK-LABEL: func.func @absorb_query$v3
// CHECK-SAME: (%[[Q_NOPE:[^:]+]]: tensor<1x4x4x16xf32>, %[[WKV_B:[^:]+]]: tensor<128x32xf32>)
// CHECK: %[[Q_LATENT:.*]] = "mla.absorb_query"(%[[Q_NOPE]], %[[WKV_B]])
// CHECK-SAME: {num_heads = 4 : i64, qk_nope_head_dim = 16 : i64, v_head_dim = 16 : i64}
// CHECK-SAME: -> tensor<1x4x4x32xf32>
// CHECK: return %[[Q_LATENT]]
func.func @absorb_query$v3(%q_nope: tensor<1x4x4x16xf32>, %wkv_b: tensor<128x32xf32>) -> tensor<1x4x4x32xf32> {
  %q_latent = "mla.absorb_query"(%q_nope, %wkv_b) {num_heads = 4 : i64, qk_nope_head_dim = 16 : i64, v_head_dim = 16 : i64}
    : (tensor<1x4x4x16xf32>, tensor<128x32xf32>) -> tensor<1x4x4x32xf32>
  return %q_latent : tensor<1x4x4x32xf32>
}

// CHECK-LABEL: func.func @absorb_output$v3
// CHECK-SAME: (%[[CTX:[^:]+]]: tensor<1x4x4x32xf32>, %[[WKV_B:[^:]+]]: tensor<128x32xf32>)
// CHECK: %[[O:.*]] = "mla.absorb_output"(%[[CTX]], %[[WKV_B]])
// CHECK-SAME: -> tensor<1x4x4x16xf32>
// CHECK: return %[[O]]
func.func @absorb_output$v3(%ctx: tensor<1x4x4x32xf32>, %wkv_b: tensor<128x32xf32>) -> tensor<1x4x4x16xf32> {
  %o = "mla.absorb_output"(%ctx, %wkv_b) {num_heads = 4 : i64, qk_nope_head_dim = 16 : i64, v_head_dim = 16 : i64}
    : (tensor<1x4x4x32xf32>, tensor<128x32xf32>) -> tensor<1x4x4x16xf32>
  return %o : tensor<1x4x4x16xf32>
}

// CHECK-LABEL: func.func @cache_update$prefill
// CHECK-SAME: (%[[CACHE:[^:]+]]: tensor<1x16x40xf32>, %[[ENTRIES:[^:]+]]: tensor<1x4x40xf32>, %[[POS:[^:]+]]: tensor<1x4xi64>)
// CHECK: %[[NEW:.*]] = "mla.cache_update"(%[[CACHE]], %[[ENTRIES]], %[[POS]])
// CHECK-SAME: -> tensor<1x16x40xf32>
// CHECK: return %[[NEW]]
func.func @cache_update$prefill(%cache: tensor<1x16x40xf32>, %entries: tensor<1x4x40xf32>, %pos: tensor<1x4xi64>) -> tensor<1x16x40xf32> {
  %new = "mla.cache_update"(%cache, %entries, %pos) {operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0>, rope_layout = "none"} : (tensor<1x16x40xf32>, tensor<1x4x40xf32>, tensor<1x4xi64>) -> tensor<1x16x40xf32>
  return %new : tensor<1x16x40xf32>
}

// CHECK-LABEL: func.func @cache_update$dynamic_cache_i32_positions
// CHECK: "mla.cache_update"
// CHECK-SAME: (tensor<1x?x40xf32>, tensor<1x1x40xf32>, tensor<1x1xi32>) -> tensor<1x?x40xf32>
func.func @cache_update$dynamic_cache_i32_positions(%cache: tensor<1x?x40xf32>, %entries: tensor<1x1x40xf32>, %pos: tensor<1x1xi32>) -> tensor<1x?x40xf32> {
  %new = "mla.cache_update"(%cache, %entries, %pos) {operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0>, rope_layout = "none"} : (tensor<1x?x40xf32>, tensor<1x1x40xf32>, tensor<1x1xi32>) -> tensor<1x?x40xf32>
  return %new : tensor<1x?x40xf32>
}

// CHECK-LABEL: func.func @decoupled_attention$prefill
// CHECK-SAME: (%[[Q_NOPE:[^:]+]]: tensor<1x4x4x16xf32>, %[[Q_PE:[^:]+]]: tensor<1x4x4x8xf32>, %[[K_NOPE:[^:]+]]: tensor<1x16x4x16xf32>, %[[K_PE:[^:]+]]: tensor<1x16x8xf32>, %[[V:[^:]+]]: tensor<1x16x4x16xf32>, %[[Q_POS:[^:]+]]: tensor<1x4xi64>, %[[K_POS:[^:]+]]: tensor<1x16xi64>)
// CHECK: %[[O:.*]] = "mla.decoupled_attention"(%[[Q_NOPE]], %[[Q_PE]], %[[K_NOPE]], %[[K_PE]], %[[V]], %[[Q_POS]], %[[K_POS]])
// CHECK-SAME: {{.*}}softmax_scale = 2.500000e-01 : f64}
// CHECK-SAME: -> tensor<1x4x4x16xf32>
// CHECK: return %[[O]]
func.func @decoupled_attention$prefill(%q_nope: tensor<1x4x4x16xf32>, %q_pe: tensor<1x4x4x8xf32>,
                                       %k_nope: tensor<1x16x4x16xf32>, %k_pe: tensor<1x16x8xf32>,
                                       %v: tensor<1x16x4x16xf32>, %q_pos: tensor<1x4xi64>,
                                       %k_pos: tensor<1x16xi64>) -> tensor<1x4x4x16xf32> {
  %o = "mla.decoupled_attention"(%q_nope, %q_pe, %k_nope, %k_pe, %v, %q_pos, %k_pos) {operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0>, rope_layout = "none", softmax_scale = 0.25 : f64}
    : (tensor<1x4x4x16xf32>, tensor<1x4x4x8xf32>, tensor<1x16x4x16xf32>, tensor<1x16x8xf32>,
       tensor<1x16x4x16xf32>, tensor<1x4xi64>, tensor<1x16xi64>) -> tensor<1x4x4x16xf32>
  return %o : tensor<1x4x4x16xf32>
}

// CHECK-LABEL: func.func @kv_expand$v3
// CHECK-SAME: (%[[LATENT:[^:]+]]: tensor<1x16x32xf32>, %[[WKV_B:[^:]+]]: tensor<128x32xf32>)
// CHECK: %[[KV:.*]]:2 = "mla.kv_expand"(%[[LATENT]], %[[WKV_B]])
// CHECK-SAME: -> (tensor<1x16x4x16xf32>, tensor<1x16x4x16xf32>)
// CHECK: return %[[KV]]#0, %[[KV]]#1
func.func @kv_expand$v3(%latent: tensor<1x16x32xf32>, %wkv_b: tensor<128x32xf32>) -> (tensor<1x16x4x16xf32>, tensor<1x16x4x16xf32>) {
  %k_nope, %v = "mla.kv_expand"(%latent, %wkv_b) {num_heads = 4 : i64, qk_nope_head_dim = 16 : i64, v_head_dim = 16 : i64}
    : (tensor<1x16x32xf32>, tensor<128x32xf32>) -> (tensor<1x16x4x16xf32>, tensor<1x16x4x16xf32>)
  return %k_nope, %v : tensor<1x16x4x16xf32>, tensor<1x16x4x16xf32>
}

// CHECK-LABEL: func.func @kv_expand$value_dim_differs
// CHECK: "mla.kv_expand"
// CHECK-SAME: -> (tensor<1x16x4x16xf32>, tensor<1x16x4x8xf32>)
func.func @kv_expand$value_dim_differs(%latent: tensor<1x16x32xf32>, %wkv_b: tensor<96x32xf32>) -> (tensor<1x16x4x16xf32>, tensor<1x16x4x8xf32>) {
  %k_nope, %v = "mla.kv_expand"(%latent, %wkv_b) {num_heads = 4 : i64, qk_nope_head_dim = 16 : i64, v_head_dim = 8 : i64}
    : (tensor<1x16x32xf32>, tensor<96x32xf32>) -> (tensor<1x16x4x16xf32>, tensor<1x16x4x8xf32>)
  return %k_nope, %v : tensor<1x16x4x16xf32>, tensor<1x16x4x8xf32>
}

// CHECK-LABEL: func.func @latent_attention$decode
// CHECK-SAME: (%[[Q_LATENT:[^:]+]]: tensor<1x1x4x32xf32>, %[[Q_PE:[^:]+]]: tensor<1x1x4x8xf32>, %[[CACHE:[^:]+]]: tensor<1x16x40xf32>, %[[POS:[^:]+]]: tensor<1x1xi64>)
// CHECK: %[[CTX:.*]] = "mla.latent_attention"(%[[Q_LATENT]], %[[Q_PE]], %[[CACHE]], %[[POS]])
// CHECK-SAME: {kv_lora_rank = 32 : i64, {{.*}}softmax_scale = 2.500000e-01 : f64}
// CHECK-SAME: -> tensor<1x1x4x32xf32>
// CHECK: return %[[CTX]]
func.func @latent_attention$decode(%q_latent: tensor<1x1x4x32xf32>, %q_pe: tensor<1x1x4x8xf32>,
                                   %cache: tensor<1x16x40xf32>, %pos: tensor<1x1xi64>) -> tensor<1x1x4x32xf32> {
  %ctx = "mla.latent_attention"(%q_latent, %q_pe, %cache, %pos) {operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 0, 0>, rope_layout = "none", kv_lora_rank = 32 : i64, softmax_scale = 0.25 : f64}
    : (tensor<1x1x4x32xf32>, tensor<1x1x4x8xf32>, tensor<1x16x40xf32>, tensor<1x1xi64>) -> tensor<1x1x4x32xf32>
  return %ctx : tensor<1x1x4x32xf32>
}

// CHECK-LABEL: func.func @rms_norm$hidden
// CHECK-SAME: (%[[X:[^:]+]]: tensor<1x4x64xf32>, %[[W:[^:]+]]: tensor<64xf32>)
// CHECK: %[[Y:.*]] = "mla.rms_norm"(%[[X]], %[[W]]) {eps = 9.9999999999999995E-7 : f64}
// CHECK: return %[[Y]]
func.func @rms_norm$hidden(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) -> tensor<1x4x64xf32> {
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// CHECK-LABEL: func.func @rms_norm$kv_latent_bf16_dynamic_tokens
// CHECK: "mla.rms_norm"
// CHECK-SAME: (tensor<?x32xbf16>, tensor<32xbf16>) -> tensor<?x32xbf16>
func.func @rms_norm$kv_latent_bf16_dynamic_tokens(%c: tensor<?x32xbf16>, %w: tensor<32xbf16>) -> tensor<?x32xbf16> {
  %y = "mla.rms_norm"(%c, %w) {eps = 1.0e-6 : f64} : (tensor<?x32xbf16>, tensor<32xbf16>) -> tensor<?x32xbf16>
  return %y : tensor<?x32xbf16>
}

// Query part: per head [B, S, H, dr], DeepSeek's interleaved pairs.
// CHECK-LABEL: func.func @rotary_embedding$query_interleaved
// CHECK-SAME: (%[[Q_PE:[^:]+]]: tensor<1x4x4x8xf32>, %[[POS:[^:]+]]: tensor<1x4xi64>)
// CHECK: %[[ROT:.*]] = "mla.rotary_embedding"(%[[Q_PE]], %[[POS]])
// CHECK-SAME: layout = "interleaved"
// CHECK-SAME: -> tensor<1x4x4x8xf32>
// CHECK: return %[[ROT]]
func.func @rotary_embedding$query_interleaved(%q_pe: tensor<1x4x4x8xf32>, %pos: tensor<1x4xi64>) -> tensor<1x4x4x8xf32> {
  %rot = "mla.rotary_embedding"(%q_pe, %pos) {
      rope = {layout = "interleaved", theta = 10000.0 : f64, factor = 1.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = true}}
    : (tensor<1x4x4x8xf32>, tensor<1x4xi64>) -> tensor<1x4x4x8xf32>
  return %rot : tensor<1x4x4x8xf32>
}

// Key part: shared by all heads [B, S, dr], Hugging Face rotate-half pairs with YaRN.
// CHECK-LABEL: func.func @rotary_embedding$key_rotate_half_yarn
// CHECK: "mla.rotary_embedding"
// CHECK-SAME: factor = 4.000000e+01 : f64, layout = "rotate_half"
// CHECK-SAME: -> tensor<1x4x8xf32>
func.func @rotary_embedding$key_rotate_half_yarn(%k_pe: tensor<1x4x8xf32>, %pos: tensor<1x4xi64>) -> tensor<1x4x8xf32> {
  %rot = "mla.rotary_embedding"(%k_pe, %pos) {
      rope = {layout = "rotate_half", theta = 10000.0 : f64, factor = 40.0 : f64,
              original_seq_len = 4096 : i64, beta_fast = 32.0 : f64, beta_slow = 1.0 : f64,
              cos_sin_scale = 1.0 : f64, truncate = false}}
    : (tensor<1x4x8xf32>, tensor<1x4xi64>) -> tensor<1x4x8xf32>
  return %rot : tensor<1x4x8xf32>
}

// Fused RoPE (--mla-fuse-rope): tables computed once, rotation inside the cache write and the
// attention's q_pe load.
// CHECK-LABEL: func.func @rope_tables$fused_decode
// CHECK: %[[TABLES:.*]]:2 = "mla.rope_tables"()
// CHECK-SAME: dim = 8 : i64, max_positions = 16 : i64
// CHECK-SAME: -> (tensor<16x4xf32>, tensor<16x4xf32>)
// CHECK: %[[CACHE:.*]] = "mla.cache_update"(%{{[^,]+}}, %{{[^,]+}}, %{{[^,]+}}, %[[TABLES]]#0, %[[TABLES]]#1)
// CHECK-SAME: rope_layout = "interleaved"
// CHECK: "mla.latent_attention"(%{{[^,]+}}, %{{[^,]+}}, %[[CACHE]], %{{[^,]+}}, %[[TABLES]]#0, %[[TABLES]]#1)
// CHECK-SAME: rope_layout = "interleaved"
func.func @rope_tables$fused_decode(%q_latent: tensor<1x1x4x32xf32>, %q_pe: tensor<1x1x4x8xf32>,
    %cache: tensor<1x16x40xf32>, %entries: tensor<1x1x40xf32>, %pos: tensor<1x1xi64>) -> tensor<1x1x4x32xf32> {
  %cos, %sin = "mla.rope_tables"() {rope = {beta_fast = 3.200000e+01 : f64, beta_slow = 1.000000e+00 : f64, cos_sin_scale = 1.000000e+00 : f64, factor = 4.000000e+01 : f64, layout = "interleaved", original_seq_len = 4096 : i64, theta = 1.000000e+04 : f64, truncate = true}, dim = 8 : i64, max_positions = 16 : i64} : () -> (tensor<16x4xf32>, tensor<16x4xf32>)
  %new = "mla.cache_update"(%cache, %entries, %pos, %cos, %sin) {operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0>, rope_layout = "interleaved"}
    : (tensor<1x16x40xf32>, tensor<1x1x40xf32>, tensor<1x1xi64>, tensor<16x4xf32>, tensor<16x4xf32>) -> tensor<1x16x40xf32>
  %ctx = "mla.latent_attention"(%q_latent, %q_pe, %new, %pos, %cos, %sin) {operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0>, rope_layout = "interleaved", kv_lora_rank = 32 : i64, softmax_scale = 0.25 : f64}
    : (tensor<1x1x4x32xf32>, tensor<1x1x4x8xf32>, tensor<1x16x40xf32>, tensor<1x1xi64>, tensor<16x4xf32>, tensor<16x4xf32>) -> tensor<1x1x4x32xf32>
  return %ctx : tensor<1x1x4x32xf32>
}

// Paged latent cache: a pool of 9 blocks of 4 tokens, 2 sequences of up to 4 blocks each.
// CHECK-LABEL: func.func @cache_update$paged
// CHECK: "mla.cache_update"
// CHECK-SAME: operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 1>
// CHECK-SAME: (tensor<9x4x40xf32>, tensor<2x3x40xf32>, tensor<2x3xi64>, tensor<2x4xi32>) -> tensor<9x4x40xf32>
func.func @cache_update$paged(%pool: tensor<9x4x40xf32>, %entries: tensor<2x3x40xf32>, %pos: tensor<2x3xi64>, %table: tensor<2x4xi32>) -> tensor<9x4x40xf32> {
  %new = "mla.cache_update"(%pool, %entries, %pos, %table) {operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 1>, rope_layout = "none"} : (tensor<9x4x40xf32>, tensor<2x3x40xf32>, tensor<2x3xi64>, tensor<2x4xi32>) -> tensor<9x4x40xf32>
  return %new : tensor<9x4x40xf32>
}

// CHECK-LABEL: func.func @latent_attention$paged
// CHECK: "mla.latent_attention"
// CHECK-SAME: operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 0, 1>
// CHECK-SAME: -> tensor<2x1x4x32xf32>
func.func @latent_attention$paged(%q_latent: tensor<2x1x4x32xf32>, %q_pe: tensor<2x1x4x8xf32>, %pool: tensor<9x4x40xf32>, %pos: tensor<2x1xi64>, %table: tensor<2x4xi32>) -> tensor<2x1x4x32xf32> {
  %ctx = "mla.latent_attention"(%q_latent, %q_pe, %pool, %pos, %table) {operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 0, 1>, rope_layout = "none", kv_lora_rank = 32 : i64, softmax_scale = 0.25 : f64}
    : (tensor<2x1x4x32xf32>, tensor<2x1x4x8xf32>, tensor<9x4x40xf32>, tensor<2x1xi64>, tensor<2x4xi32>) -> tensor<2x1x4x32xf32>
  return %ctx : tensor<2x1x4x32xf32>
}

// CHECK-LABEL: func.func @cache_gather$paged
// CHECK: %[[OUT:.*]] = "mla.cache_gather"(%{{.*}}, %{{.*}}) : (tensor<9x4x40xf32>, tensor<2x4xi32>) -> tensor<2x16x40xf32>
// CHECK: return %[[OUT]]
func.func @cache_gather$paged(%pool: tensor<9x4x40xf32>, %table: tensor<2x4xi32>) -> tensor<2x16x40xf32> {
  %out = "mla.cache_gather"(%pool, %table) : (tensor<9x4x40xf32>, tensor<2x4xi32>) -> tensor<2x16x40xf32>
  return %out : tensor<2x16x40xf32>
}
