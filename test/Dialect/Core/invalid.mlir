// RUN: mlacc-opt %s --split-input-file --verify-diagnostics

func.func @weight$empty_key() -> tensor<40x64xf32> {
  // expected-error @+1 {{'mlacc.weight' op attribute 'key' must not be empty}}
  %w = "mlacc.weight"() {key = ""} : () -> tensor<40x64xf32>
  return %w : tensor<40x64xf32>
}

// -----

func.func @weight$unranked_result() -> tensor<*xf32> {
  // expected-error @+1 {{'mlacc.weight' op result must be a ranked tensor, got tensor<*xf32>}}
  %w = "mlacc.weight"() {key = "layers.0.attn.wo.weight"} : () -> tensor<*xf32>
  return %w : tensor<*xf32>
}

// -----

func.func @weight$memref_result() -> memref<4xf32> {
  // expected-error @+1 {{'mlacc.weight' op result must be a ranked tensor, got memref<4xf32>}}
  %w = "mlacc.weight"() {key = "layers.0.attn.wo.weight"} : () -> memref<4xf32>
  return %w : memref<4xf32>
}

// -----

func.func @weight$operand(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{op expects exactly 0 operands, but got 1}}
  %w = "mlacc.weight"(%x) {key = "layers.0.attn.wo.weight"} : (tensor<4xf32>) -> tensor<4xf32>
  return %w : tensor<4xf32>
}

// -----

// An op the dialect does not define.
func.func @weight$unknown_op() {
  // expected-error @+1 {{custom op 'mlacc.weights' is unknown}}
  mlacc.weights
  return
}
