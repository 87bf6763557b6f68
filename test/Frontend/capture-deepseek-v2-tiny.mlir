// DeepSeek-V2 style: no q low-rank path (wq), softmax router without correction bias.
// RUN: mlacc capture deepseek-v2-tiny -o %t.mlir
// RUN: mlacc-opt %t.mlir | filecheck %s

// CHECK-LABEL: func.func @forward
// CHECK: "mlacc.weight"() {key = "layers.0.attn.wq.weight"}
// CHECK: "mla.attention"
// CHECK-SAME: q_lora_rank = 0 : i64
// CHECK: "moe.router"
// CHECK-SAME: group_score = "max"
// CHECK-SAME: score_func = "softmax"
// CHECK-NOT: torch.operator
