// RUN: mlacc-opt %s --split-input-file --llvm-lower | filecheck %s

// Weights become function arguments after the inputs (never constants in the code); each op
// becomes a call to a private kernel of linalg on builtin tensors.

// CHECK-LABEL: func.func @rms_norm
// CHECK-SAME: (%[[X:.*]]: tensor<2x8xf32>, %[[W:.*]]: tensor<8xf32>) -> tensor<2x8xf32>
// CHECK-SAME: llvm.inputs = 1 : i64, llvm.weights = ["norm.weight"]
// CHECK-NEXT: %[[Y:.*]] = call @[[K:__llvm_mla_rms_norm_[0-9]+]](%[[X]], %[[W]])
// CHECK-NEXT: return %[[Y]]
// CHECK-LABEL: func.func private @__llvm_mla_rms_norm
// The fp32 sum of squares is a reduction over the last dim ...
// CHECK: %[[SS:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]
// CHECK: arith.mulf
// CHECK-NEXT: arith.addf
// ... then one elementwise op scales by rsqrt(mean + eps) and the weight.
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "parallel"]{{.*}}ins(%{{.*}}, %[[SS]], %{{.*}} :
// CHECK: arith.divf
// CHECK: math.rsqrt
// CHECK-NOT: mla.rms_norm
func.func @rms_norm(%x: !torch.vtensor<[2,8],f32>) -> !torch.vtensor<[2,8],f32> {
  %w = "mlacc.weight"() {key = "norm.weight"} : () -> !torch.vtensor<[8],f32>
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (!torch.vtensor<[2,8],f32>, !torch.vtensor<[8],f32>) -> !torch.vtensor<[2,8],f32>
  return %y : !torch.vtensor<[2,8],f32>
}

// -----

// A linear layer reads the weight as stored ([N, K], transposed-B indexing): no per-call
// transpose of the weight (torch-mlir's own lowering would insert a linalg.transpose).

// CHECK-LABEL: func.func private @__llvm_torch_aten_linear
// CHECK-NOT: linalg.transpose
// CHECK: linalg.generic {indexing_maps = [#[[XMAP:.*]], #[[WMAP:.*]], #[[OMAP:.*]]], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%{{.*}}, %{{.*}} : tensor<4x16xf32>, tensor<32x16xf32>) outs(%{{.*}} : tensor<4x32xf32>)
func.func @linear(%x: !torch.vtensor<[4,16],f32>) -> !torch.vtensor<[4,32],f32> {
  %w = "mlacc.weight"() {key = "wq"} : () -> !torch.vtensor<[32,16],f32>
  %none = torch.constant.none
  %y = torch.aten.linear %x, %w, %none : !torch.vtensor<[4,16],f32>, !torch.vtensor<[32,16],f32>, !torch.none -> !torch.vtensor<[4,32],f32>
  return %y : !torch.vtensor<[4,32],f32>
}

// -----

// The cache update is a loop nest of tensor.insert_slice into the cache argument (it
// bufferizes in place); the returned cache is recorded as donated: output 0 <- input 0.
// Out-of-range positions are skipped, not written.

// CHECK-LABEL: func.func @decode
// CHECK-SAME: llvm.donated = [0, 0]
// CHECK-LABEL: func.func private @__llvm_mla_cache_update
// CHECK-SAME: (%[[CACHE:.*]]: tensor<2x8x12xf32>, %[[E:.*]]: tensor<2x3x12xf32>, %[[P:.*]]: tensor<2x3xi64>)
// CHECK: scf.for {{.*}} iter_args(%[[ACC:.*]] = %[[CACHE]])
// CHECK: scf.for
// CHECK: %[[POS:.*]] = tensor.extract %[[P]]
// CHECK: scf.if
// CHECK: %[[ROW:.*]] = tensor.extract_slice %[[E]]
// CHECK: tensor.insert_slice %[[ROW]] into
func.func @decode(%cache: !torch.vtensor<[2,8,12],f32>, %e: !torch.vtensor<[2,3,12],f32>, %p: !torch.vtensor<[2,3],si64>) -> !torch.vtensor<[2,8,12],f32> {
  %c = "mla.cache_update"(%cache, %e, %p) {operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0>, rope_layout = "none"} : (!torch.vtensor<[2,8,12],f32>, !torch.vtensor<[2,3,12],f32>, !torch.vtensor<[2,3],si64>) -> !torch.vtensor<[2,8,12],f32>
  return %c : !torch.vtensor<[2,8,12],f32>
}

// -----

// Latent attention: scores against the latent part and the rotary part of the cache (two
// fp32 contractions over slices of the one cache tensor), a position-masked softmax (row max,
// exp, row sum), then the weighted sum over the latent part.

// CHECK-LABEL: func.func private @__llvm_mla_latent_attention
// CHECK-DAG: %[[LAT:.*]] = tensor.extract_slice %{{.*}}[0, 0, 0] [1, 6, 16] [1, 1, 1] : tensor<1x6x20xf32> to tensor<1x6x16xf32>
// CHECK-DAG: %[[PE:.*]] = tensor.extract_slice %{{.*}}[0, 0, 16] [1, 6, 4] [1, 1, 1] : tensor<1x6x20xf32> to tensor<1x6x4xf32>
// CHECK: linalg.generic {{.*}}"reduction"]} ins(%{{.*}}, %[[LAT]] :
// CHECK: linalg.generic {{.*}}"reduction"]} ins(%{{.*}}, %[[PE]] :
// CHECK: arith.cmpi sle
// CHECK: arith.maximumf
// CHECK: math.exp
// CHECK: linalg.generic {{.*}}"reduction"]} ins(%{{.*}}, %[[LAT]] : tensor<1x2x2x6xf32>, tensor<1x6x16xf32>)
func.func @latent(%q: !torch.vtensor<[1,2,2,16],f32>, %qpe: !torch.vtensor<[1,2,2,4],f32>, %kv: !torch.vtensor<[1,6,20],f32>, %p: !torch.vtensor<[1,2],si64>) -> !torch.vtensor<[1,2,2,16],f32> {
  %o = "mla.latent_attention"(%q, %qpe, %kv, %p) {kv_lora_rank = 16 : i64, softmax_scale = 0.25 : f64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 0, 0>, rope_layout = "none"} : (!torch.vtensor<[1,2,2,16],f32>, !torch.vtensor<[1,2,2,4],f32>, !torch.vtensor<[1,6,20],f32>, !torch.vtensor<[1,2],si64>) -> !torch.vtensor<[1,2,2,16],f32>
  return %o : !torch.vtensor<[1,2,2,16],f32>
}

// -----

// FP8: LLVM has no f8 conversions, so the quantizer rounds in integer arithmetic and stores
// the code through an i8 bitcast; the scale is a per-block amax loop inside a generic.

// CHECK-LABEL: func.func private @__llvm_fp8_quantize
// CHECK: scf.for
// CHECK: math.absf
// CHECK: arith.maximumf
// CHECK: math.roundeven
// CHECK: arith.trunci %{{.*}} : i32 to i8
// CHECK: arith.bitcast %{{.*}} : i8 to f8E4M3FN
func.func @quantize(%x: !torch.vtensor<[2,256],f32>) -> (!torch.vtensor<[2,256],f8E4M3FN>, !torch.vtensor<[2,2],f32>) {
  %q:2 = "fp8.quantize"(%x) {block_shape = array<i64: 128>, pow2_scale = false} : (!torch.vtensor<[2,256],f32>) -> (!torch.vtensor<[2,256],f8E4M3FN>, !torch.vtensor<[2,2],f32>)
  return %q#0, %q#1 : !torch.vtensor<[2,256],f8E4M3FN>, !torch.vtensor<[2,2],f32>
}

// -----

// Routing is a loop nest per token: group scores (top-2 sums), the best groups as a bit
// mask, then the top-k experts inside them in descending order.

// CHECK-LABEL: func.func private @__llvm_moe_router
// CHECK: math.exp
// CHECK: %[[TOK:.*]]:2 = scf.for
// CHECK: %[[MASK:.*]] = scf.for {{.*}} -> (i64)
// CHECK: arith.shli
// CHECK: scf.for {{.*}} -> (f32, index, tensor<3x2xf32>, tensor<3x2xi64>, f32)
// CHECK: arith.shrui %[[MASK]]
// CHECK: return %[[TOK]]#0, %[[TOK]]#1
func.func @route(%x: !torch.vtensor<[3,16],f32>, %w: !torch.vtensor<[8,16],f32>, %b: !torch.vtensor<[8],f32>) -> (!torch.vtensor<[3,2],f32>, !torch.vtensor<[3,2],si64>) {
  %r:2 = "moe.router"(%x, %w, %b) {group_score = "top2_sum", n_groups = 4 : i64, norm_topk_prob = true, operandSegmentSizes = array<i32: 1, 1, 1>, route_scale = 2.5 : f64, score_func = "sigmoid", top_k = 2 : i64, topk_group = 2 : i64} : (!torch.vtensor<[3,16],f32>, !torch.vtensor<[8,16],f32>, !torch.vtensor<[8],f32>) -> (!torch.vtensor<[3,2],f32>, !torch.vtensor<[3,2],si64>)
  return %r#0, %r#1 : !torch.vtensor<[3,2],f32>, !torch.vtensor<[3,2],si64>
}

// -----

// A paged cache: slot p of row b is pool[block_table[b, p / bs], p % bs]; a write is skipped
// when the slot is outside the table or the block id outside the pool.

// CHECK-LABEL: func.func @paged_update
// CHECK-SAME: llvm.donated = [0, 0]
// CHECK-LABEL: func.func private @__llvm_mla_cache_update
// CHECK-SAME: (%[[POOL:.*]]: tensor<5x4x12xf32>, %{{.*}}: tensor<1x1x12xf32>, %{{.*}}: tensor<1x1xi64>, %[[BT:.*]]: tensor<1x2xi32>)
// CHECK: %[[BLK:.*]] = arith.divui
// CHECK: %[[OFF:.*]] = arith.remui
// CHECK: %[[ID:.*]] = tensor.extract %[[BT]]
// CHECK: %[[DST:.*]] = arith.index_cast %[[ID]] : i32 to index
// CHECK: arith.cmpi slt, %[[DST]]
// CHECK: tensor.insert_slice %{{.*}} into %{{.*}}[%[[DST]], %[[OFF]], 0] [1, 1, 12]
func.func @paged_update(%pool: !torch.vtensor<[5,4,12],f32>, %e: !torch.vtensor<[1,1,12],f32>, %p: !torch.vtensor<[1,1],si64>, %bt: !torch.vtensor<[1,2],si32>) -> !torch.vtensor<[5,4,12],f32> {
  %c = "mla.cache_update"(%pool, %e, %p, %bt) {operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 1>, rope_layout = "none"} : (!torch.vtensor<[5,4,12],f32>, !torch.vtensor<[1,1,12],f32>, !torch.vtensor<[1,1],si64>, !torch.vtensor<[1,2],si32>) -> !torch.vtensor<[5,4,12],f32>
  return %c : !torch.vtensor<[5,4,12],f32>
}

// -----

// Gathering a paged cache into its logical [B, M * bs, E] form: one generic reading the
// block id from the table and the entry from the pool (ids clamped into the pool).

// CHECK-LABEL: func.func private @__llvm_mla_cache_gather
// CHECK-SAME: (%[[POOL:.*]]: tensor<7x2x48xf32>, %[[BT:.*]]: tensor<2x3xi32>) -> tensor<2x6x48xf32>
// CHECK: linalg.generic
// CHECK: tensor.extract %[[BT]]
// CHECK: arith.minsi
// CHECK: tensor.extract %[[POOL]]
func.func @gather(%pool: !torch.vtensor<[7,2,48],f32>, %bt: !torch.vtensor<[2,3],si32>) -> !torch.vtensor<[2,6,48],f32> {
  %0 = "mla.cache_gather"(%pool, %bt) : (!torch.vtensor<[7,2,48],f32>, !torch.vtensor<[2,3],si32>) -> !torch.vtensor<[2,6,48],f32>
  return %0 : !torch.vtensor<[2,6,48],f32>
}

// -----

// A grouped matmul whose only use is a SwiGLU is lowered with it as one kernel: the
// activation runs per expert on its rows only, and there is no [rows, 2I] result. The down
// projection (two uses: returned and combined) stays its own kernel.

// CHECK-LABEL: func.func @fused
// CHECK: call @__llvm_moe_grouped_matmul_swiglu_{{[0-9]+}}
// CHECK-NOT: call @__llvm_moe_swiglu
// CHECK: call @__llvm_moe_grouped_matmul_{{[0-9]+}}
// CHECK-LABEL: func.func private @__llvm_moe_grouped_matmul_swiglu
// CHECK-SAME: -> tensor<34x8xf32>
// CHECK: scf.for
// CHECK: scf.if
// CHECK: linalg.generic {{.*}}"reduction"
// CHECK: math.exp
// CHECK: tensor.insert_slice {{.*}} : tensor<?x8xf32> into tensor<34x8xf32>
func.func @fused(%x: !torch.vtensor<[5,16],f32>, %idx: !torch.vtensor<[5,2],si64>, %wg: !torch.vtensor<[8,16,16],f32>, %wd: !torch.vtensor<[8,16,8],f32>) -> (!torch.vtensor<[34,16],f32>, !torch.vtensor<[34,16],f32>) {
  %0:3 = "moe.dispatch"(%x, %idx) {block_size = 4 : i64, num_experts = 8 : i64} : (!torch.vtensor<[5,16],f32>, !torch.vtensor<[5,2],si64>) -> (!torch.vtensor<[34,16],f32>, !torch.vtensor<[5,2],si64>, !torch.vtensor<[9],si64>)
  %1 = "moe.grouped_matmul"(%0#0, %wg, %0#2) : (!torch.vtensor<[34,16],f32>, !torch.vtensor<[8,16,16],f32>, !torch.vtensor<[9],si64>) -> !torch.vtensor<[34,16],f32>
  %2 = "moe.swiglu"(%1) : (!torch.vtensor<[34,16],f32>) -> !torch.vtensor<[34,8],f32>
  %3 = "moe.grouped_matmul"(%2, %wd, %0#2) : (!torch.vtensor<[34,8],f32>, !torch.vtensor<[8,16,8],f32>, !torch.vtensor<[9],si64>) -> !torch.vtensor<[34,16],f32>
  return %3, %3 : !torch.vtensor<[34,16],f32>, !torch.vtensor<[34,16],f32>
}
