// RUN: mlacc-opt %s --split-input-file --quantize-fp8 | filecheck %s
// RUN: mlacc-opt %s --split-input-file '--quantize-fp8=weight-block=64 pow2-scale=true experts=false mlp=false' | filecheck %s --check-prefix=OPTS
// RUN: mlacc-opt %s --split-input-file --quantize-fp8 -o %t.once.mlir
// RUN: mlacc-opt %t.once.mlir --split-input-file --quantize-fp8 -o %t.twice.mlir
// RUN: diff %t.once.mlir %t.twice.mlir
// RUN: not mlacc-opt %s --split-input-file --quantize-fp8=weight-block=0 2>&1 | filecheck %s --check-prefix=BAD-BLOCK

// `--quantize-fp8`: linears on weights become fp8.quantize (weight, 128x128 blocks) +
// fp8.quantize (activation, per token per 128 channels) + fp8.matmul; grouped expert matmuls
// become fp8.grouped_matmul; the LM head stays in high precision and says why. Running it twice
// changes nothing (the %t files must not differ).

// BAD-BLOCK: mlacc-opt: error: pass 'quantize-fp8': option 'weight-block' must be positive, got 0
// BAD-BLOCK-NOT: error

// CHECK-LABEL: func.func @linear_quantized
// CHECK-SAME: (%[[X:[^:]+]]: !torch.vtensor<[2,5,256],f32>)
// CHECK: %[[W:.*]] = "mlacc.weight"() {key = "layers.0.attn.wq_a.weight"}
// CHECK-NEXT: %[[WQ:.*]]:2 = "fp8.quantize"(%[[W]]) {block_shape = array<i64: 128, 128>, pow2_scale = false}
// CHECK-SAME: -> (!torch.vtensor<[192,256],f8E4M3FN>, !torch.vtensor<[2,2],f32>)
// CHECK-NEXT: %[[XQ:.*]]:2 = "fp8.quantize"(%[[X]]) {block_shape = array<i64: 128>, pow2_scale = false}
// CHECK-SAME: -> (!torch.vtensor<[2,5,256],f8E4M3FN>, !torch.vtensor<[2,5,2],f32>)
// CHECK-NEXT: %[[Y:.*]] = "fp8.matmul"(%[[XQ]]#0, %[[XQ]]#1, %[[WQ]]#0, %[[WQ]]#1)
// CHECK-SAME: {block_k = 128 : i64, block_n = 128 : i64, mlacc.fp8 = "layers.0.attn.wq_a.weight", out_dtype = "float32"}
// CHECK-SAME: -> !torch.vtensor<[2,5,192],f32>
// CHECK-NOT: torch.aten.linear
// CHECK: return %[[Y]]
// OPTS-LABEL: func.func @linear_quantized
// OPTS: "fp8.quantize"({{.*}}) {block_shape = array<i64: 64, 64>, pow2_scale = true} {{.*}} !torch.vtensor<[3,4],f32>)
// OPTS: "fp8.quantize"({{.*}}) {block_shape = array<i64: 64>, pow2_scale = true} {{.*}} !torch.vtensor<[2,5,4],f32>)
// OPTS: "fp8.matmul"{{.*}}{block_k = 64 : i64, block_n = 64 : i64,
func.func @linear_quantized(%x: !torch.vtensor<[2,5,256],f32>) -> !torch.vtensor<[2,5,192],f32> {
  %w = "mlacc.weight"() {key = "layers.0.attn.wq_a.weight"} : () -> !torch.vtensor<[192,256],f32>
  %none = torch.constant.none
  %y = torch.aten.linear %x, %w, %none : !torch.vtensor<[2,5,256],f32>, !torch.vtensor<[192,256],f32>, !torch.none -> !torch.vtensor<[2,5,192],f32>
  return %y : !torch.vtensor<[2,5,192],f32>
}

// -----

// The LM head is excluded by default (DeepSeek-V3 keeps it in high precision).
// CHECK-LABEL: func.func @head_excluded
// CHECK-NOT: fp8.
// CHECK: torch.aten.linear {{.*}} {mlacc.fp8_skip = "excluded: weight 'lm_head.weight' matches 'head.weight'"}
// CHECK-SAME: -> !torch.vtensor<[2,5,512],bf16>
func.func @head_excluded(%x: !torch.vtensor<[2,5,64],bf16>) -> !torch.vtensor<[2,5,512],bf16> {
  %w = "mlacc.weight"() {key = "lm_head.weight"} : () -> !torch.vtensor<[512,64],bf16>
  %none = torch.constant.none
  %y = torch.aten.linear %x, %w, %none : !torch.vtensor<[2,5,64],bf16>, !torch.vtensor<[512,64],bf16>, !torch.none -> !torch.vtensor<[2,5,512],bf16>
  return %y : !torch.vtensor<[2,5,512],bf16>
}

// -----

// A weight that is a function argument (not an mlacc.weight) is not quantized.
// CHECK-LABEL: func.func @activation_weight_not_quantized
// CHECK-NOT: fp8.
// CHECK: torch.aten.linear {{.*}} {mlacc.fp8_skip = "the weight is not computed from mlacc.weight ops only"}
func.func @activation_weight_not_quantized(%x: !torch.vtensor<[4,64],f32>, %w: !torch.vtensor<[32,64],f32>) -> !torch.vtensor<[4,32],f32> {
  %none = torch.constant.none
  %y = torch.aten.linear %x, %w, %none : !torch.vtensor<[4,64],f32>, !torch.vtensor<[32,64],f32>, !torch.none -> !torch.vtensor<[4,32],f32>
  return %y : !torch.vtensor<[4,32],f32>
}

// -----

// Grouped expert matmul on the fused gate/up weight built by weight-only torch ops; bf16 out.
// CHECK-LABEL: func.func @grouped_quantized
// CHECK-SAME: (%[[X:[^:]+]]: !torch.vtensor<[40,64],bf16>, %[[OFF:[^:]+]]: !torch.vtensor<[5],si64>)
// CHECK: %[[W13:.*]] = torch.aten.cat
// CHECK-NEXT: %[[WQ:.*]]:2 = "fp8.quantize"(%[[W13]]) {block_shape = array<i64: 128, 128>, pow2_scale = false}
// CHECK-SAME: -> (!torch.vtensor<[4,32,64],f8E4M3FN>, !torch.vtensor<[4,1,1],f32>)
// CHECK-NEXT: %[[XQ:.*]]:2 = "fp8.quantize"(%[[X]]) {block_shape = array<i64: 128>, pow2_scale = false}
// CHECK-NEXT: %[[Y:.*]] = "fp8.grouped_matmul"(%[[XQ]]#0, %[[XQ]]#1, %[[WQ]]#0, %[[WQ]]#1, %[[OFF]])
// CHECK-SAME: {block_k = 128 : i64, block_n = 128 : i64, mlacc.fp8 = "ffn.experts.w_gate, ffn.experts.w_up", out_dtype = "bfloat16"}
// CHECK-SAME: -> !torch.vtensor<[40,32],bf16>
// CHECK-NOT: moe.grouped_matmul
// CHECK: return %[[Y]]
// OPTS-LABEL: func.func @grouped_quantized
// OPTS: "moe.grouped_matmul"{{.*}} {mlacc.fp8_skip = "experts=false"}
func.func @grouped_quantized(%x: !torch.vtensor<[40,64],bf16>, %offsets: !torch.vtensor<[5],si64>) -> !torch.vtensor<[40,32],bf16> {
  %gate = "mlacc.weight"() {key = "ffn.experts.w_gate"} : () -> !torch.vtensor<[4,16,64],bf16>
  %up = "mlacc.weight"() {key = "ffn.experts.w_up"} : () -> !torch.vtensor<[4,16,64],bf16>
  %list = torch.prim.ListConstruct %gate, %up : (!torch.vtensor<[4,16,64],bf16>, !torch.vtensor<[4,16,64],bf16>) -> !torch.list<vtensor>
  %int1 = torch.constant.int 1
  %w13 = torch.aten.cat %list, %int1 : !torch.list<vtensor>, !torch.int -> !torch.vtensor<[4,32,64],bf16>
  %y = "moe.grouped_matmul"(%x, %w13, %offsets) : (!torch.vtensor<[40,64],bf16>, !torch.vtensor<[4,32,64],bf16>, !torch.vtensor<[5],si64>) -> !torch.vtensor<[40,32],bf16>
  return %y : !torch.vtensor<[40,32],bf16>
}

// -----

// A dense moe.mlp is decomposed into three linears (x quantized once for gate and up).
// CHECK-LABEL: func.func @dense_mlp
// CHECK-SAME: (%[[X:[^:]+]]: !torch.vtensor<[1,4,64],f32>)
// CHECK-NOT: "moe.mlp"
// CHECK: %[[XQ:.*]]:2 = "fp8.quantize"(%[[X]]) {block_shape = array<i64: 128>
// CHECK-NEXT: %[[G:.*]] = "fp8.matmul"(%[[XQ]]#0, %[[XQ]]#1, {{.*}} mlacc.fp8 = "layers.0.ffn.w1.weight"
// CHECK-NEXT: %[[S:.*]] = torch.aten.silu %[[G]]
// CHECK-NEXT: "fp8.quantize"
// CHECK-NEXT: %[[U:.*]] = "fp8.matmul"(%[[XQ]]#0, %[[XQ]]#1, {{.*}} mlacc.fp8 = "layers.0.ffn.w3.weight"
// CHECK-NEXT: %[[H:.*]] = torch.aten.mul.Tensor %[[S]], %[[U]]
// CHECK: %[[HQ:.*]]:2 = "fp8.quantize"(%[[H]]) {block_shape = array<i64: 128>
// CHECK-NEXT: %[[Y:.*]] = "fp8.matmul"(%[[HQ]]#0, %[[HQ]]#1, {{.*}} mlacc.fp8 = "layers.0.ffn.w2.weight"
// CHECK: return %[[Y]]
// OPTS-LABEL: func.func @dense_mlp
// OPTS: "moe.mlp"
func.func @dense_mlp(%x: !torch.vtensor<[1,4,64],f32>) -> !torch.vtensor<[1,4,64],f32> {
  %w1 = "mlacc.weight"() {key = "layers.0.ffn.w1.weight"} : () -> !torch.vtensor<[128,64],f32>
  %w3 = "mlacc.weight"() {key = "layers.0.ffn.w3.weight"} : () -> !torch.vtensor<[128,64],f32>
  %w2 = "mlacc.weight"() {key = "layers.0.ffn.w2.weight"} : () -> !torch.vtensor<[64,128],f32>
  %y = "moe.mlp"(%x, %w1, %w3, %w2) : (!torch.vtensor<[1,4,64],f32>, !torch.vtensor<[128,64],f32>, !torch.vtensor<[128,64],f32>, !torch.vtensor<[64,128],f32>) -> !torch.vtensor<[1,4,64],f32>
  return %y : !torch.vtensor<[1,4,64],f32>
}
