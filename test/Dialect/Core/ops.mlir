// RUN: mlacc-opt %s | mlacc-opt | filecheck %s
// RUN: mlacc-opt %s --mlir-print-op-generic | mlacc-opt | filecheck %s

// Round trip of the `mlacc` core op: `mlacc.weight`, a named reference to weight data kept
// outside the IR (state-dict names of a DeepSeek-V3-like layer).

// CHECK-LABEL: func.func @weight$attention_weights
// CHECK: %[[WKV_A:.*]] = "mlacc.weight"() {key = "layers.0.attn.wkv_a.weight"} : () -> tensor<40x64xf32>
// CHECK-NEXT: %[[KV_NORM:.*]] = "mlacc.weight"() {key = "layers.0.attn.kv_norm.weight"} : () -> tensor<32xf32>
// CHECK-NEXT: return %[[WKV_A]], %[[KV_NORM]]
func.func @weight$attention_weights() -> (tensor<40x64xf32>, tensor<32xf32>) {
  %wkv_a = "mlacc.weight"() {key = "layers.0.attn.wkv_a.weight"} : () -> tensor<40x64xf32>
  %kv_norm = "mlacc.weight"() {key = "layers.0.attn.kv_norm.weight"} : () -> tensor<32xf32>
  return %wkv_a, %kv_norm : tensor<40x64xf32>, tensor<32xf32>
}

// CHECK-LABEL: func.func @weight$fp8_expert_weight_and_scale
// CHECK: "mlacc.weight"() {key = "layers.3.ffn.experts.7.w1.weight"} : () -> tensor<32x64xf8E4M3FN>
// CHECK: "mlacc.weight"() {key = "layers.3.ffn.experts.7.w1.weight_scale_inv"} : () -> tensor<1x1xf32>
func.func @weight$fp8_expert_weight_and_scale() -> (tensor<32x64xf8E4M3FN>, tensor<1x1xf32>) {
  %w = "mlacc.weight"() {key = "layers.3.ffn.experts.7.w1.weight"} : () -> tensor<32x64xf8E4M3FN>
  %s = "mlacc.weight"() {key = "layers.3.ffn.experts.7.w1.weight_scale_inv"} : () -> tensor<1x1xf32>
  return %w, %s : tensor<32x64xf8E4M3FN>, tensor<1x1xf32>
}

// CHECK-LABEL: func.func @weight$vtensor
// CHECK: "mlacc.weight"() {key = "embed.weight"} : () -> !torch.vtensor<[1000,64],bf16>
func.func @weight$vtensor() -> !torch.vtensor<[1000,64],bf16> {
  %e = "mlacc.weight"() {key = "embed.weight"} : () -> !torch.vtensor<[1000,64],bf16>
  return %e : !torch.vtensor<[1000,64],bf16>
}

// Weights feed the graph ops like any other value.
// CHECK-LABEL: func.func @weight$feeds_rms_norm
// CHECK-SAME: (%[[X:[^:]+]]: tensor<1x4x64xf32>)
// CHECK: %[[NORM_W:.*]] = "mlacc.weight"() {key = "layers.0.attn_norm.weight"}
// CHECK-NEXT: %[[Y:.*]] = "mla.rms_norm"(%[[X]], %[[NORM_W]])
// CHECK-NEXT: return %[[Y]]
func.func @weight$feeds_rms_norm(%x: tensor<1x4x64xf32>) -> tensor<1x4x64xf32> {
  %w = "mlacc.weight"() {key = "layers.0.attn_norm.weight"} : () -> tensor<64xf32>
  %y = "mla.rms_norm"(%x, %w) {eps = 1.0e-6 : f64} : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}
