// RUN: mlacc-opt %s --split-input-file --llvm-lower | filecheck %s

// The remaining op lowerings (see llvm-lower.mlir for norm, linear, cache, latent
// attention, quantize, router, paged and fused forms).
// -----

// RoPE (interleaved pairs, YaRN frequencies computed at compile time): one elementwise
// generic reading the position and rotating the pair with cos/sin of position * frequency.
// CHECK-LABEL: func.func private @__llvm_mla_rotary_embedding
// CHECK: linalg.generic {{.*}}["parallel", "parallel", "parallel", "parallel"]
// CHECK: math.cos
// CHECK: math.sin
func.func @rotary_interleaved_yarn(%arg0: !torch.vtensor<[2,5,3,16],f32>, %arg1: !torch.vtensor<[2,5],si64>) -> !torch.vtensor<[2,5,3,16],f32> {
  %0 = "mla.rotary_embedding"(%arg0, %arg1) {rope = {beta_fast = 3.200000e+01 : f64, beta_slow = 1.000000e+00 : f64, cos_sin_scale = 1.100000e+00 : f64, factor = 4.000000e+00 : f64, layout = "interleaved", original_seq_len = 64 : i64, theta = 1.000000e+04 : f64, truncate = true}} : (!torch.vtensor<[2,5,3,16],f32>, !torch.vtensor<[2,5],si64>) -> !torch.vtensor<[2,5,3,16],f32>
  return %0 : !torch.vtensor<[2,5,3,16],f32>
}

// -----

// absorb_query: q_nope . W_UK with W_UK a slice of wkv_b viewed [H, dn + dv, C]; the loop
// order puts the latent dim innermost (contiguous rows of W_UK), the summed dn before it.
// CHECK-LABEL: func.func private @__llvm_mla_absorb_query
// CHECK: tensor.expand_shape {{.*}} into tensor<4x32x32xf32>
// CHECK: tensor.extract_slice {{.*}}[0, 0, 0] [4, 16, 32]
// CHECK: linalg.generic {{.*}}["parallel", "parallel", "parallel", "reduction", "parallel"]
func.func @absorb_query(%arg0: !torch.vtensor<[2,5,4,16],f32>, %arg1: !torch.vtensor<[128,32],f32>) -> !torch.vtensor<[2,5,4,32],f32> {
  %0 = "mla.absorb_query"(%arg0, %arg1) {num_heads = 4 : i64, qk_nope_head_dim = 16 : i64, v_head_dim = 16 : i64} : (!torch.vtensor<[2,5,4,16],f32>, !torch.vtensor<[128,32],f32>) -> !torch.vtensor<[2,5,4,32],f32>
  return %0 : !torch.vtensor<[2,5,4,32],f32>
}

// -----

// kv_expand: the latent cache times W_UK and W_UV (two slices of wkv_b): two contractions
// summing the latent dim, innermost in both operands (the schedule's dot form).
// CHECK-LABEL: func.func private @__llvm_mla_kv_expand
// CHECK-DAG: tensor.extract_slice {{.*}}[0, 0, 0] [4, 16, 32]
// CHECK-DAG: tensor.extract_slice {{.*}}[0, 16, 0] [4, 16, 32]
// CHECK: linalg.generic {{.*}}"reduction"]
// CHECK: linalg.generic {{.*}}"reduction"]
// CHECK: return {{.*}} : tensor<2x14x4x16xf32>, tensor<2x14x4x16xf32>
func.func @kv_expand(%arg0: !torch.vtensor<[2,14,32],f32>, %arg1: !torch.vtensor<[128,32],f32>) -> (!torch.vtensor<[2,14,4,16],f32>, !torch.vtensor<[2,14,4,16],f32>) {
  %0:2 = "mla.kv_expand"(%arg0, %arg1) {num_heads = 4 : i64, qk_nope_head_dim = 16 : i64, v_head_dim = 16 : i64} : (!torch.vtensor<[2,14,32],f32>, !torch.vtensor<[128,32],f32>) -> (!torch.vtensor<[2,14,4,16],f32>, !torch.vtensor<[2,14,4,16],f32>)
  return %0#0, %0#1 : !torch.vtensor<[2,14,4,16],f32>, !torch.vtensor<[2,14,4,16],f32>
}

// -----

// Un-absorbed attention: per-head scores plus the head-shared rotary scores, a softmax
// masked by k_pos <= q_pos (both position operands read in the mask generic), then p . V with
// the head dim innermost.
// CHECK-LABEL: func.func private @__llvm_mla_decoupled_attention
// CHECK: linalg.generic {{.*}}"reduction"]} ins(%arg0, %arg2
// CHECK: linalg.generic {{.*}}"reduction"]} ins(%arg1, %arg3
// CHECK: ins({{.*}}, %arg5, %arg6 :
// CHECK: arith.cmpi sle
// CHECK: math.exp
// CHECK: linalg.generic {{.*}}["parallel", "parallel", "parallel", "reduction", "parallel"]} ins({{.*}}, %arg4
func.func @decoupled_attention(%arg0: !torch.vtensor<[2,5,4,16],f32>, %arg1: !torch.vtensor<[2,5,4,16],f32>, %arg2: !torch.vtensor<[2,7,4,16],f32>, %arg3: !torch.vtensor<[2,7,16],f32>, %arg4: !torch.vtensor<[2,7,4,16],f32>, %arg5: !torch.vtensor<[2,5],si64>, %arg6: !torch.vtensor<[2,7],si64>) -> !torch.vtensor<[2,5,4,16],f32> {
  %0 = "mla.decoupled_attention"(%arg0, %arg1, %arg2, %arg3, %arg4, %arg5, %arg6) {operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0>, rope_layout = "none", softmax_scale = 3.000000e-01 : f64} : (!torch.vtensor<[2,5,4,16],f32>, !torch.vtensor<[2,5,4,16],f32>, !torch.vtensor<[2,7,4,16],f32>, !torch.vtensor<[2,7,16],f32>, !torch.vtensor<[2,7,4,16],f32>, !torch.vtensor<[2,5],si64>, !torch.vtensor<[2,7],si64>) -> !torch.vtensor<[2,5,4,16],f32>
  return %0 : !torch.vtensor<[2,5,4,16],f32>
}

// -----

// MoE: dispatch is a counting sort (counts, block-padded offsets, row moves) in scf loops;
// grouped matmuls loop over experts, run 16-row blocks then the remaining rows of each
// segment; gate/up is returned here (two uses), so the SwiGLU stays its own kernel; combine
// gathers each token's rows weighted by the router.
// CHECK-LABEL: func.func private @__llvm_moe_dispatch
// CHECK: scf.for
// CHECK: tensor.insert_slice {{.*}} : tensor<1x16xf32> into tensor<34x16xf32>
// CHECK-LABEL: func.func private @__llvm_moe_grouped_matmul
// CHECK: scf.for {{.*}} iter_args
// CHECK: tensor.insert_slice {{.*}} [16, 16] [1, 1] : tensor<16x16xf32> into tensor<34x16xf32>
// CHECK: tensor.insert_slice {{.*}} : tensor<?x16xf32> into tensor<34x16xf32>
// CHECK-LABEL: func.func private @__llvm_moe_swiglu
// CHECK: math.exp
// CHECK-LABEL: func.func private @__llvm_moe_combine
// CHECK: arith.index_cast
func.func @dispatch_grouped_swiglu_combine(%arg0: !torch.vtensor<[5,16],f32>, %arg1: !torch.vtensor<[5,2],si64>, %arg2: !torch.vtensor<[5,2],f32>, %arg3: !torch.vtensor<[8,16,16],f32>, %arg4: !torch.vtensor<[8,16,8],f32>) -> (!torch.vtensor<[34,16],f32>, !torch.vtensor<[5,2],si64>, !torch.vtensor<[9],si64>, !torch.vtensor<[34,16],f32>, !torch.vtensor<[34,8],f32>, !torch.vtensor<[5,16],f32>) {
  %0:3 = "moe.dispatch"(%arg0, %arg1) {block_size = 4 : i64, num_experts = 8 : i64} : (!torch.vtensor<[5,16],f32>, !torch.vtensor<[5,2],si64>) -> (!torch.vtensor<[34,16],f32>, !torch.vtensor<[5,2],si64>, !torch.vtensor<[9],si64>)
  %1 = "moe.grouped_matmul"(%0#0, %arg3, %0#2) : (!torch.vtensor<[34,16],f32>, !torch.vtensor<[8,16,16],f32>, !torch.vtensor<[9],si64>) -> !torch.vtensor<[34,16],f32>
  %2 = "moe.swiglu"(%1) : (!torch.vtensor<[34,16],f32>) -> !torch.vtensor<[34,8],f32>
  %3 = "moe.grouped_matmul"(%2, %arg4, %0#2) : (!torch.vtensor<[34,8],f32>, !torch.vtensor<[8,16,8],f32>, !torch.vtensor<[9],si64>) -> !torch.vtensor<[34,16],f32>
  %4 = "moe.combine"(%3, %0#1, %arg2) : (!torch.vtensor<[34,16],f32>, !torch.vtensor<[5,2],si64>, !torch.vtensor<[5,2],f32>) -> !torch.vtensor<[5,16],f32>
  return %0#0, %0#1, %0#2, %1, %2, %4 : !torch.vtensor<[34,16],f32>, !torch.vtensor<[5,2],si64>, !torch.vtensor<[9],si64>, !torch.vtensor<[34,16],f32>, !torch.vtensor<[34,8],f32>, !torch.vtensor<[5,16],f32>
}

// -----

// FP8: the block-scaled matmul walks K in static 128-wide blocks (a contraction the
// schedule vectorizes) and scales each block's partial by x_scale * w_scale; dequantize
// widens the integer-coded e4m3 values.
// CHECK-LABEL: func.func private @__llvm_fp8_matmul
// CHECK: scf.for
// CHECK: tensor.extract_slice {{.*}} [10, 128] [1, 1] : tensor<10x256xf8E4M3FN> to tensor<10x128xf8E4M3FN>
// CHECK: linalg.generic {{.*}}"reduction"]
// CHECK-LABEL: func.func private @__llvm_fp8_dequantize
func.func @fp8_quantize_matmul_dequantize(%arg0: !torch.vtensor<[2,5,256],f32>, %arg1: !torch.vtensor<[64,256],f32>) -> (!torch.vtensor<[2,5,256],f8E4M3FN>, !torch.vtensor<[2,5,2],f32>, !torch.vtensor<[64,256],f8E4M3FN>, !torch.vtensor<[1,2],f32>, !torch.vtensor<[2,5,64],f32>, !torch.vtensor<[2,5,256],f32>) {
  %0:2 = "fp8.quantize"(%arg1) {block_shape = array<i64: 128, 128>, pow2_scale = false} : (!torch.vtensor<[64,256],f32>) -> (!torch.vtensor<[64,256],f8E4M3FN>, !torch.vtensor<[1,2],f32>)
  %1:2 = "fp8.quantize"(%arg0) {block_shape = array<i64: 128>, pow2_scale = true} : (!torch.vtensor<[2,5,256],f32>) -> (!torch.vtensor<[2,5,256],f8E4M3FN>, !torch.vtensor<[2,5,2],f32>)
  %2 = "fp8.matmul"(%1#0, %1#1, %0#0, %0#1) {block_k = 128 : i64, block_n = 128 : i64, out_dtype = "float32"} : (!torch.vtensor<[2,5,256],f8E4M3FN>, !torch.vtensor<[2,5,2],f32>, !torch.vtensor<[64,256],f8E4M3FN>, !torch.vtensor<[1,2],f32>) -> !torch.vtensor<[2,5,64],f32>
  %3 = "fp8.dequantize"(%1#0, %1#1) {block_shape = array<i64: 128>, out_dtype = "float32"} : (!torch.vtensor<[2,5,256],f8E4M3FN>, !torch.vtensor<[2,5,2],f32>) -> !torch.vtensor<[2,5,256],f32>
  return %1#0, %1#1, %0#0, %0#1, %2, %3 : !torch.vtensor<[2,5,256],f8E4M3FN>, !torch.vtensor<[2,5,2],f32>, !torch.vtensor<[64,256],f8E4M3FN>, !torch.vtensor<[1,2],f32>, !torch.vtensor<[2,5,64],f32>, !torch.vtensor<[2,5,256],f32>
}
