// The frontend turns every MLA block and every MoE into single mla/moe ops; nothing stays an
// opaque torch.operator, and weights are named references into the model's state dict.
// RUN: mlacc capture deepseek-v3-tiny -o %t.mlir --cache-len 32
// RUN: mlacc-opt %t.mlir | filecheck %s
// RUN: mlacc-opt %t.mlir | filecheck %s --check-prefix=NOOPAQUE

// CHECK-LABEL: func.func @forward
// CHECK-SAME: (%[[TOKENS:.*]]: !torch.vtensor<[1,16],si64>) -> !torch.vtensor<[1,16,512],f32>
// CHECK: %[[EMBED:.*]] = "mlacc.weight"() {key = "embed.weight"}
// CHECK: torch.aten.embedding %[[EMBED]], %[[TOKENS]]
// CHECK: "mla.rms_norm"
// CHECK: "mlacc.weight"() {key = "layers.0.attn.wkv_b.weight"} : () -> !torch.vtensor<[128,32],f32>
// CHECK: %[[ATTN0:.*]] = "mla.attention"
// CHECK-SAME: kv_lora_rank = 32 : i64
// CHECK-SAME: layout = "interleaved"
// CHECK-SAME: -> !torch.vtensor<[1,16,64],f32>
// CHECK: "moe.mlp"
// CHECK: "mla.attention"
// CHECK: %[[ROUTE:.*]]:2 = "moe.router"
// CHECK-SAME: score_func = "sigmoid"
// CHECK: "mlacc.weight"() {key = "layers.1.ffn.experts.w_gate"} : () -> !torch.vtensor<[8,32,64],f32>
// CHECK: "moe.experts"(%{{.*}}, %[[ROUTE]]#0, %[[ROUTE]]#1
// CHECK: return

// The cached entry points take and return one latent cache per layer: 32 + 8 values per token.
// CHECK-LABEL: func.func @prefill
// CHECK-SAME: !torch.vtensor<[1,32,40],f32>, !torch.vtensor<[1,32,40],f32>, !torch.vtensor<[1,32,40],f32>
// CHECK: %{{.*}}:2 = "mla.attention"
// CHECK-LABEL: func.func @decode
// CHECK-SAME: (%{{.*}}: !torch.vtensor<[1,1],si64>, %{{.*}}: !torch.vtensor<[1,1],si64>

// NOOPAQUE-NOT: torch.operator
// NOOPAQUE-NOT: dense_resource
