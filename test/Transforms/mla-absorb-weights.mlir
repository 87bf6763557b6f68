// RUN: mlacc-opt %s --split-input-file --mla-absorb-weights | filecheck %s
// RUN: mlacc-opt %s --split-input-file --mla-absorb-weights=absorb=never | filecheck %s --check-prefix=NEVER
// RUN: mlacc-opt %s --split-input-file --mla-absorb-weights=premultiply=always | filecheck %s --check-prefix=PRE
// Idempotent: a second run finds no mla.attention and changes nothing.
// RUN: mlacc-opt %s --split-input-file --mla-absorb-weights > %t.once
// RUN: mlacc-opt %t.once --split-input-file --mla-absorb-weights > %t.twice
// RUN: diff %t.once %t.twice

// Decode (one new token over a 64-token latent cache, memory-bound): absorbed.
// CHECK-LABEL: func.func @attention$decode
// CHECK-NOT: "mla.attention"
// CHECK: %[[Q_NOPE:.*]] = torch.aten.slice.Tensor
// CHECK: %[[Q_PE:.*]] = "mla.rotary_embedding"
// CHECK: %[[C_KV:.*]] = "mla.rms_norm"
// CHECK: %[[K_PE:.*]] = "mla.rotary_embedding"
// CHECK: %[[ENTRIES:.*]] = torch.aten.cat
// CHECK: %[[CACHE:.*]] = "mla.cache_update"(%{{[^ ,)]+}}, %[[ENTRIES]], %{{[^ ,)]+}}) {{.*}}: (!torch.vtensor<[1,64,40],f32>, !torch.vtensor<[1,1,40],f32>
// CHECK: %[[Q_LAT:.*]] = "mla.absorb_query"(%[[Q_NOPE]], %{{[^ ,)]+}}) {{.*}} -> !torch.vtensor<[1,1,2,32],f32>
// CHECK: %[[CTX:.*]] = "mla.latent_attention"(%[[Q_LAT]], %[[Q_PE]], %[[CACHE]], %{{[^ ,)]+}})
// CHECK-SAME: mlacc.absorb = "absorbed"
// CHECK-SAME: mlacc.absorb_reason = "S=1 T=64: absorbed is cheaper
// CHECK-SAME: mlacc.premultiplied = "none"
// CHECK: "mla.absorb_output"(%[[CTX]], %{{[^ ,)]+}})
// CHECK-NOT: "mla.kv_expand"
// CHECK: return %{{[^ ,)]+}}, %[[CACHE]]
// NEVER-LABEL: func.func @attention$decode
// NEVER: "mla.kv_expand"
// NEVER: "mla.decoupled_attention"
// NEVER-SAME: mlacc.absorb = "unabsorbed", mlacc.absorb_reason = "S=1 T=64: absorb=never by option
// PRE-LABEL: func.func @attention$decode
// PRE: torch.constant.str "hdc,hdq->hcq"
// PRE: torch.constant.str "bsq,hcq->bshc"
// PRE: "mla.latent_attention"
// PRE-SAME: mlacc.premultiplied = "q,o"
// PRE: torch.constant.str "bshc,dhc->bsd"
// PRE-NOT: "mla.absorb_query"
func.func @attention$decode(%x: !torch.vtensor<[1,1,64],f32>, %pos: !torch.vtensor<[1,1],si64>, %wkv_a: !torch.vtensor<[40,64],f32>, %kv_norm: !torch.vtensor<[32],f32>, %wkv_b: !torch.vtensor<[64,32],f32>, %wo: !torch.vtensor<[64,32],f32>, %wq_a: !torch.vtensor<[64,64],f32>, %q_norm: !torch.vtensor<[64],f32>, %wq_b: !torch.vtensor<[48,64],f32>, %cache: !torch.vtensor<[1,64,40],f32>) -> (!torch.vtensor<[1,1,64],f32>, !torch.vtensor<[1,64,40],f32>) {
  %y, %new_cache = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq_a, %q_norm, %wq_b, %cache) {eps = 1.0e-06 : f64, kv_lora_rank = 32 : i64, num_heads = 2 : i64, q_lora_rank = 64 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, softmax_scale = 0.2041 : f64, rope = {beta_fast = 3.200000e+01 : f64, beta_slow = 1.000000e+00 : f64, cos_sin_scale = 1.000000e+00 : f64, factor = 1.000000e+00 : f64, layout = "interleaved", original_seq_len = 4096 : i64, theta = 1.000000e+04 : f64, truncate = true}, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0>, resultSegmentSizes = array<i32: 1, 1>}
    : (!torch.vtensor<[1,1,64],f32>, !torch.vtensor<[1,1],si64>, !torch.vtensor<[40,64],f32>, !torch.vtensor<[32],f32>, !torch.vtensor<[64,32],f32>, !torch.vtensor<[64,32],f32>, !torch.vtensor<[64,64],f32>, !torch.vtensor<[64],f32>, !torch.vtensor<[48,64],f32>, !torch.vtensor<[1,64,40],f32>) -> (!torch.vtensor<[1,1,64],f32>, !torch.vtensor<[1,64,40],f32>)
  return %y, %new_cache : !torch.vtensor<[1,1,64],f32>, !torch.vtensor<[1,64,40],f32>
}

// -----

// Prefill (4096 new tokens over a 4096-token cache, compute-bound): the un-absorbed form is cheaper.
// CHECK-LABEL: func.func @attention$prefill_long
// CHECK: "mla.cache_update"
// CHECK: %[[K:.*]]:2 = "mla.kv_expand"
// CHECK: "mla.decoupled_attention"(%{{[^ ,)]+}}, %{{[^ ,)]+}}, %[[K]]#0, %{{[^ ,)]+}}, %[[K]]#1
// CHECK-SAME: mlacc.absorb = "unabsorbed", mlacc.absorb_reason = "S=4096 T=4096: un-absorbed is cheaper
func.func @attention$prefill_long(%x: !torch.vtensor<[1,4096,64],f32>, %pos: !torch.vtensor<[1,4096],si64>, %wkv_a: !torch.vtensor<[40,64],f32>, %kv_norm: !torch.vtensor<[32],f32>, %wkv_b: !torch.vtensor<[64,32],f32>, %wo: !torch.vtensor<[64,32],f32>, %wq_a: !torch.vtensor<[64,64],f32>, %q_norm: !torch.vtensor<[64],f32>, %wq_b: !torch.vtensor<[48,64],f32>, %cache: !torch.vtensor<[1,4096,40],f32>) -> (!torch.vtensor<[1,4096,64],f32>, !torch.vtensor<[1,4096,40],f32>) {
  %y, %new_cache = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq_a, %q_norm, %wq_b, %cache) {eps = 1.0e-06 : f64, kv_lora_rank = 32 : i64, num_heads = 2 : i64, q_lora_rank = 64 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, softmax_scale = 0.2041 : f64, rope = {beta_fast = 3.200000e+01 : f64, beta_slow = 1.000000e+00 : f64, cos_sin_scale = 1.000000e+00 : f64, factor = 1.000000e+00 : f64, layout = "interleaved", original_seq_len = 4096 : i64, theta = 1.000000e+04 : f64, truncate = true}, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0>, resultSegmentSizes = array<i32: 1, 1>}
    : (!torch.vtensor<[1,4096,64],f32>, !torch.vtensor<[1,4096],si64>, !torch.vtensor<[40,64],f32>, !torch.vtensor<[32],f32>, !torch.vtensor<[64,32],f32>, !torch.vtensor<[64,32],f32>, !torch.vtensor<[64,64],f32>, !torch.vtensor<[64],f32>, !torch.vtensor<[48,64],f32>, !torch.vtensor<[1,4096,40],f32>) -> (!torch.vtensor<[1,4096,64],f32>, !torch.vtensor<[1,4096,40],f32>)
  return %y, %new_cache : !torch.vtensor<[1,4096,64],f32>, !torch.vtensor<[1,4096,40],f32>
}

// -----

// No cache (the `forward` entry point), no q low-rank path: un-absorbed over the new tokens.
// CHECK-LABEL: func.func @attention$no_cache
// CHECK: torch.aten.linear %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}} : !torch.vtensor<[1,4,64],f32>, !torch.vtensor<[48,64],f32>
// CHECK-NOT: "mla.cache_update"
// CHECK: "mla.decoupled_attention"
// CHECK-SAME: no latent KV cache to attend over
func.func @attention$no_cache(%x: !torch.vtensor<[1,4,64],f32>, %pos: !torch.vtensor<[1,4],si64>, %wkv_a: !torch.vtensor<[40,64],f32>, %kv_norm: !torch.vtensor<[32],f32>, %wkv_b: !torch.vtensor<[64,32],f32>, %wo: !torch.vtensor<[64,32],f32>, %wq: !torch.vtensor<[48,64],f32>) -> (!torch.vtensor<[1,4,64],f32>) {
  %y = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq) {eps = 1.0e-06 : f64, kv_lora_rank = 32 : i64, num_heads = 2 : i64, q_lora_rank = 0 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, softmax_scale = 0.2041 : f64, rope = {beta_fast = 3.200000e+01 : f64, beta_slow = 1.000000e+00 : f64, cos_sin_scale = 1.000000e+00 : f64, factor = 1.000000e+00 : f64, layout = "interleaved", original_seq_len = 4096 : i64, theta = 1.000000e+04 : f64, truncate = true}, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0>}
    : (!torch.vtensor<[1,4,64],f32>, !torch.vtensor<[1,4],si64>, !torch.vtensor<[40,64],f32>, !torch.vtensor<[32],f32>, !torch.vtensor<[64,32],f32>, !torch.vtensor<[64,32],f32>, !torch.vtensor<[48,64],f32>) -> (!torch.vtensor<[1,4,64],f32>)
  return %y : !torch.vtensor<[1,4,64],f32>
}

// -----

// With a small q_lora_rank, W_UK^T W_UQ ([H, C, q_lora]) is smaller than the two factors:
// the cost model pre-multiplies the query side (and keeps W_O, W_UV apart).
// CHECK-LABEL: func.func @attention$decode_small_q_lora
// CHECK: torch.constant.str "hdc,hdq->hcq"
// CHECK: "mla.latent_attention"
// CHECK-SAME: q side pre-multiplied
// CHECK-SAME: o side kept apart
// CHECK-SAME: mlacc.premultiplied = "q"
// CHECK: "mla.absorb_output"
func.func @attention$decode_small_q_lora(%x: !torch.vtensor<[1,1,64],f32>, %pos: !torch.vtensor<[1,1],si64>, %wkv_a: !torch.vtensor<[40,64],f32>, %kv_norm: !torch.vtensor<[32],f32>, %wkv_b: !torch.vtensor<[64,32],f32>, %wo: !torch.vtensor<[64,32],f32>, %wq_a: !torch.vtensor<[8,64],f32>, %q_norm: !torch.vtensor<[8],f32>, %wq_b: !torch.vtensor<[48,8],f32>, %cache: !torch.vtensor<[1,64,40],f32>) -> (!torch.vtensor<[1,1,64],f32>, !torch.vtensor<[1,64,40],f32>) {
  %y, %new_cache = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq_a, %q_norm, %wq_b, %cache) {eps = 1.0e-06 : f64, kv_lora_rank = 32 : i64, num_heads = 2 : i64, q_lora_rank = 8 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, softmax_scale = 0.2041 : f64, rope = {beta_fast = 3.200000e+01 : f64, beta_slow = 1.000000e+00 : f64, cos_sin_scale = 1.000000e+00 : f64, factor = 1.000000e+00 : f64, layout = "interleaved", original_seq_len = 4096 : i64, theta = 1.000000e+04 : f64, truncate = true}, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0>, resultSegmentSizes = array<i32: 1, 1>}
    : (!torch.vtensor<[1,1,64],f32>, !torch.vtensor<[1,1],si64>, !torch.vtensor<[40,64],f32>, !torch.vtensor<[32],f32>, !torch.vtensor<[64,32],f32>, !torch.vtensor<[64,32],f32>, !torch.vtensor<[8,64],f32>, !torch.vtensor<[8],f32>, !torch.vtensor<[48,8],f32>, !torch.vtensor<[1,64,40],f32>) -> (!torch.vtensor<[1,1,64],f32>, !torch.vtensor<[1,64,40],f32>)
  return %y, %new_cache : !torch.vtensor<[1,1,64],f32>, !torch.vtensor<[1,64,40],f32>
}

// -----

// Paged cache (pool of 33 blocks of 16 tokens, 4 blocks per sequence): decode stays absorbed and
// reads the pool through the block table; long prefill gathers the sequence's blocks first.
// CHECK-LABEL: func.func @attention$paged_decode
// PRE-LABEL: func.func @attention$paged_decode
// NEVER-LABEL: func.func @attention$paged_decode
// CHECK: %[[CACHE:.*]] = "mla.cache_update"({{.*}}) {{.*}}: (!torch.vtensor<[33,16,40],f32>, !torch.vtensor<[2,1,40],f32>, !torch.vtensor<[2,1],si64>, !torch.vtensor<[2,4],si32>)
// CHECK: "mla.latent_attention"(%{{[^ ,)]+}}, %{{[^ ,)]+}}, %[[CACHE]], %{{[^ ,)]+}}, %{{[^ ,)]+}})
// CHECK-SAME: mlacc.absorb_reason = "S=1 T=64:
// CHECK-NOT: "mla.cache_gather"
// CHECK: return %{{[^ ,)]+}}, %[[CACHE]]
func.func @attention$paged_decode(%x: !torch.vtensor<[2,1,64],f32>, %pos: !torch.vtensor<[2,1],si64>, %wkv_a: !torch.vtensor<[40,64],f32>, %kv_norm: !torch.vtensor<[32],f32>, %wkv_b: !torch.vtensor<[64,32],f32>, %wo: !torch.vtensor<[64,32],f32>, %wq: !torch.vtensor<[48,64],f32>, %pool: !torch.vtensor<[33,16,40],f32>, %table: !torch.vtensor<[2,4],si32>) -> (!torch.vtensor<[2,1,64],f32>, !torch.vtensor<[33,16,40],f32>) {
  %y, %new_cache = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq, %pool, %table) {eps = 1.0e-06 : f64, kv_lora_rank = 32 : i64, num_heads = 2 : i64, q_lora_rank = 0 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, softmax_scale = 0.2041 : f64, rope = {beta_fast = 3.200000e+01 : f64, beta_slow = 1.000000e+00 : f64, cos_sin_scale = 1.000000e+00 : f64, factor = 1.000000e+00 : f64, layout = "interleaved", original_seq_len = 4096 : i64, theta = 1.000000e+04 : f64, truncate = true}, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 1>, resultSegmentSizes = array<i32: 1, 1>}
    : (!torch.vtensor<[2,1,64],f32>, !torch.vtensor<[2,1],si64>, !torch.vtensor<[40,64],f32>, !torch.vtensor<[32],f32>, !torch.vtensor<[64,32],f32>, !torch.vtensor<[64,32],f32>, !torch.vtensor<[48,64],f32>, !torch.vtensor<[33,16,40],f32>, !torch.vtensor<[2,4],si32>) -> (!torch.vtensor<[2,1,64],f32>, !torch.vtensor<[33,16,40],f32>)
  return %y, %new_cache : !torch.vtensor<[2,1,64],f32>, !torch.vtensor<[33,16,40],f32>
}

// -----

// CHECK-LABEL: func.func @attention$paged_prefill
// CHECK: %[[CACHE:.*]] = "mla.cache_update"
// CHECK: %[[KEYS:.*]] = "mla.cache_gather"(%[[CACHE]], %{{[^ ,)]+}}) : (!torch.vtensor<[17,256,40],f32>, !torch.vtensor<[1,16],si32>) -> !torch.vtensor<[1,4096,40],f32>
// CHECK: torch.aten.slice.Tensor %[[KEYS]]
// CHECK: "mla.kv_expand"
// CHECK: "mla.decoupled_attention"
// CHECK-SAME: mlacc.absorb = "unabsorbed"
func.func @attention$paged_prefill(%x: !torch.vtensor<[1,4096,64],f32>, %pos: !torch.vtensor<[1,4096],si64>, %wkv_a: !torch.vtensor<[40,64],f32>, %kv_norm: !torch.vtensor<[32],f32>, %wkv_b: !torch.vtensor<[64,32],f32>, %wo: !torch.vtensor<[64,32],f32>, %wq: !torch.vtensor<[48,64],f32>, %pool: !torch.vtensor<[17,256,40],f32>, %table: !torch.vtensor<[1,16],si32>) -> (!torch.vtensor<[1,4096,64],f32>, !torch.vtensor<[17,256,40],f32>) {
  %y, %new_cache = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq, %pool, %table) {eps = 1.0e-06 : f64, kv_lora_rank = 32 : i64, num_heads = 2 : i64, q_lora_rank = 0 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, softmax_scale = 0.2041 : f64, rope = {beta_fast = 3.200000e+01 : f64, beta_slow = 1.000000e+00 : f64, cos_sin_scale = 1.000000e+00 : f64, factor = 1.000000e+00 : f64, layout = "interleaved", original_seq_len = 4096 : i64, theta = 1.000000e+04 : f64, truncate = true}, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 1>, resultSegmentSizes = array<i32: 1, 1>}
    : (!torch.vtensor<[1,4096,64],f32>, !torch.vtensor<[1,4096],si64>, !torch.vtensor<[40,64],f32>, !torch.vtensor<[32],f32>, !torch.vtensor<[64,32],f32>, !torch.vtensor<[64,32],f32>, !torch.vtensor<[48,64],f32>, !torch.vtensor<[17,256,40],f32>, !torch.vtensor<[1,16],si32>) -> (!torch.vtensor<[1,4096,64],f32>, !torch.vtensor<[17,256,40],f32>)
  return %y, %new_cache : !torch.vtensor<[1,4096,64],f32>, !torch.vtensor<[17,256,40],f32>
}

// -----

// A padding mask (forward of a padded batch): masked keys get a key position past every query.
// CHECK-LABEL: func.func @attention$key_mask
// CHECK: %[[KPOS:.*]] = torch.aten.where.ScalarOther %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}} : !torch.vtensor<[2,4],i1>, !torch.vtensor<[2,4],si64>, !torch.int -> !torch.vtensor<[2,4],si64>
// CHECK: "mla.decoupled_attention"(%{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}, %[[KPOS]])
func.func @attention$key_mask(%x: !torch.vtensor<[2,4,64],f32>, %pos: !torch.vtensor<[2,4],si64>, %wkv_a: !torch.vtensor<[40,64],f32>, %kv_norm: !torch.vtensor<[32],f32>, %wkv_b: !torch.vtensor<[64,32],f32>, %wo: !torch.vtensor<[64,32],f32>, %wq: !torch.vtensor<[48,64],f32>, %mask: !torch.vtensor<[2,4],i1>) -> (!torch.vtensor<[2,4,64],f32>) {
  %y = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq, %mask) {eps = 1.0e-06 : f64, kv_lora_rank = 32 : i64, num_heads = 2 : i64, q_lora_rank = 0 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, softmax_scale = 0.2041 : f64, rope = {beta_fast = 3.200000e+01 : f64, beta_slow = 1.000000e+00 : f64, cos_sin_scale = 1.000000e+00 : f64, factor = 1.000000e+00 : f64, layout = "interleaved", original_seq_len = 4096 : i64, theta = 1.000000e+04 : f64, truncate = true}, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0>, resultSegmentSizes = array<i32: 1, 0>}
    : (!torch.vtensor<[2,4,64],f32>, !torch.vtensor<[2,4],si64>, !torch.vtensor<[40,64],f32>, !torch.vtensor<[32],f32>, !torch.vtensor<[64,32],f32>, !torch.vtensor<[64,32],f32>, !torch.vtensor<[48,64],f32>, !torch.vtensor<[2,4],i1>) -> (!torch.vtensor<[2,4,64],f32>)
  return %y : !torch.vtensor<[2,4,64],f32>
}

// -----

// int32 positions: the masked key position is int32's max (int64's would not fit).
// CHECK-LABEL: func.func @attention$key_mask_i32
// CHECK: %[[BIG:.*]] = torch.constant.int 2147483647
// CHECK: torch.aten.where.ScalarOther %{{[^ ,)]+}}, %{{[^ ,)]+}}, %[[BIG]] : !torch.vtensor<[2,4],i1>, !torch.vtensor<[2,4],si32>, !torch.int -> !torch.vtensor<[2,4],si32>
func.func @attention$key_mask_i32(%x: !torch.vtensor<[2,4,64],f32>, %pos: !torch.vtensor<[2,4],si32>, %wkv_a: !torch.vtensor<[40,64],f32>, %kv_norm: !torch.vtensor<[32],f32>, %wkv_b: !torch.vtensor<[64,32],f32>, %wo: !torch.vtensor<[64,32],f32>, %wq: !torch.vtensor<[48,64],f32>, %mask: !torch.vtensor<[2,4],i1>) -> (!torch.vtensor<[2,4,64],f32>) {
  %y = "mla.attention"(%x, %pos, %wkv_a, %kv_norm, %wkv_b, %wo, %wq, %mask) {eps = 1.0e-06 : f64, kv_lora_rank = 32 : i64, num_heads = 2 : i64, q_lora_rank = 0 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, softmax_scale = 0.2041 : f64, rope = {beta_fast = 3.200000e+01 : f64, beta_slow = 1.000000e+00 : f64, cos_sin_scale = 1.000000e+00 : f64, factor = 1.000000e+00 : f64, layout = "interleaved", original_seq_len = 4096 : i64, theta = 1.000000e+04 : f64, truncate = true}, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0>, resultSegmentSizes = array<i32: 1, 0>}
    : (!torch.vtensor<[2,4,64],f32>, !torch.vtensor<[2,4],si32>, !torch.vtensor<[40,64],f32>, !torch.vtensor<[32],f32>, !torch.vtensor<[64,32],f32>, !torch.vtensor<[64,32],f32>, !torch.vtensor<[48,64],f32>, !torch.vtensor<[2,4],i1>) -> (!torch.vtensor<[2,4,64],f32>)
  return %y : !torch.vtensor<[2,4,64],f32>
}
