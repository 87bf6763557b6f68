// RUN: mlacc-opt %s | mlacc-opt | filecheck %s
// RUN: mlacc-opt %s --mlir-print-op-generic | mlacc-opt | filecheck %s

// Round trip of every `fp8` op: DeepSeek-V3's block-scaled e4m3 recipe. Weights get 128x128
// blocks, activations 1x128 (per token per 128 channels).

// CHECK-LABEL: func.func @quantize$weight_128x128
// CHECK-SAME: (%[[W:[^:]+]]: tensor<256x128xf32>)
// CHECK: %[[Q:.*]]:2 = "fp8.quantize"(%[[W]]) {block_shape = array<i64: 128, 128>, pow2_scale = false}
// CHECK-SAME: -> (tensor<256x128xf8E4M3FN>, tensor<2x1xf32>)
// CHECK: return %[[Q]]#0, %[[Q]]#1
func.func @quantize$weight_128x128(%w: tensor<256x128xf32>) -> (tensor<256x128xf8E4M3FN>, tensor<2x1xf32>) {
  %q, %scale = "fp8.quantize"(%w) {block_shape = array<i64: 128, 128>, pow2_scale = false}
    : (tensor<256x128xf32>) -> (tensor<256x128xf8E4M3FN>, tensor<2x1xf32>)
  return %q, %scale : tensor<256x128xf8E4M3FN>, tensor<2x1xf32>
}

// Sizes that are not multiples of the block: partial blocks at the edges.
// CHECK-LABEL: func.func @quantize$weight_partial_blocks
// CHECK: "fp8.quantize"
// CHECK-SAME: (tensor<200x100xbf16>) -> (tensor<200x100xf8E4M3FN>, tensor<2x1xf32>)
func.func @quantize$weight_partial_blocks(%w: tensor<200x100xbf16>) -> (tensor<200x100xf8E4M3FN>, tensor<2x1xf32>) {
  %q, %scale = "fp8.quantize"(%w) {block_shape = array<i64: 128, 128>, pow2_scale = false}
    : (tensor<200x100xbf16>) -> (tensor<200x100xf8E4M3FN>, tensor<2x1xf32>)
  return %q, %scale : tensor<200x100xf8E4M3FN>, tensor<2x1xf32>
}

// CHECK-LABEL: func.func @quantize$activation_128_pow2
// CHECK-SAME: (%[[X:[^:]+]]: tensor<1x4x256xf32>)
// CHECK: %[[Q:.*]]:2 = "fp8.quantize"(%[[X]]) {block_shape = array<i64: 128>, pow2_scale = true}
// CHECK-SAME: -> (tensor<1x4x256xf8E4M3FN>, tensor<1x4x2xf32>)
func.func @quantize$activation_128_pow2(%x: tensor<1x4x256xf32>) -> (tensor<1x4x256xf8E4M3FN>, tensor<1x4x2xf32>) {
  %q, %scale = "fp8.quantize"(%x) {block_shape = array<i64: 128>, pow2_scale = true}
    : (tensor<1x4x256xf32>) -> (tensor<1x4x256xf8E4M3FN>, tensor<1x4x2xf32>)
  return %q, %scale : tensor<1x4x256xf8E4M3FN>, tensor<1x4x2xf32>
}

// CHECK-LABEL: func.func @quantize$activation_dynamic_tokens
// CHECK: "fp8.quantize"
// CHECK-SAME: (tensor<?x256xf32>) -> (tensor<?x256xf8E4M3FN>, tensor<?x2xf32>)
func.func @quantize$activation_dynamic_tokens(%x: tensor<?x256xf32>) -> (tensor<?x256xf8E4M3FN>, tensor<?x2xf32>) {
  %q, %scale = "fp8.quantize"(%x) {block_shape = array<i64: 128>, pow2_scale = false}
    : (tensor<?x256xf32>) -> (tensor<?x256xf8E4M3FN>, tensor<?x2xf32>)
  return %q, %scale : tensor<?x256xf8E4M3FN>, tensor<?x2xf32>
}

// CHECK-LABEL: func.func @dequantize$weight
// CHECK-SAME: (%[[Q:[^:]+]]: tensor<256x128xf8E4M3FN>, %[[SCALE:[^:]+]]: tensor<2x1xf32>)
// CHECK: %[[W:.*]] = "fp8.dequantize"(%[[Q]], %[[SCALE]]) {block_shape = array<i64: 128, 128>, out_dtype = "bfloat16"}
// CHECK-SAME: -> tensor<256x128xbf16>
// CHECK: return %[[W]]
func.func @dequantize$weight(%q: tensor<256x128xf8E4M3FN>, %scale: tensor<2x1xf32>) -> tensor<256x128xbf16> {
  %w = "fp8.dequantize"(%q, %scale) {block_shape = array<i64: 128, 128>, out_dtype = "bfloat16"}
    : (tensor<256x128xf8E4M3FN>, tensor<2x1xf32>) -> tensor<256x128xbf16>
  return %w : tensor<256x128xbf16>
}

// CHECK-LABEL: func.func @dequantize$e5m2_activation
// CHECK: "fp8.dequantize"
// CHECK-SAME: (tensor<4x256xf8E5M2>, tensor<4x2xf32>) -> tensor<4x256xf32>
func.func @dequantize$e5m2_activation(%q: tensor<4x256xf8E5M2>, %scale: tensor<4x2xf32>) -> tensor<4x256xf32> {
  %x = "fp8.dequantize"(%q, %scale) {block_shape = array<i64: 128>, out_dtype = "float32"}
    : (tensor<4x256xf8E5M2>, tensor<4x2xf32>) -> tensor<4x256xf32>
  return %x : tensor<4x256xf32>
}

// y = x · w^T with K = 256 (two K blocks), N = 128 (one N block), bf16 out, fp32 accumulation.
// CHECK-LABEL: func.func @matmul$deepgemm
// CHECK-SAME: (%[[X_Q:[^:]+]]: tensor<4x256xf8E4M3FN>, %[[X_SCALE:[^:]+]]: tensor<4x2xf32>, %[[W_Q:[^:]+]]: tensor<128x256xf8E4M3FN>, %[[W_SCALE:[^:]+]]: tensor<1x2xf32>)
// CHECK: %[[Y:.*]] = "fp8.matmul"(%[[X_Q]], %[[X_SCALE]], %[[W_Q]], %[[W_SCALE]])
// CHECK-SAME: {block_k = 128 : i64, block_n = 128 : i64, out_dtype = "bfloat16"}
// CHECK-SAME: -> tensor<4x128xbf16>
// CHECK: return %[[Y]]
func.func @matmul$deepgemm(%x_q: tensor<4x256xf8E4M3FN>, %x_scale: tensor<4x2xf32>,
                           %w_q: tensor<128x256xf8E4M3FN>, %w_scale: tensor<1x2xf32>) -> tensor<4x128xbf16> {
  %y = "fp8.matmul"(%x_q, %x_scale, %w_q, %w_scale) {block_n = 128 : i64, block_k = 128 : i64, out_dtype = "bfloat16"}
    : (tensor<4x256xf8E4M3FN>, tensor<4x2xf32>, tensor<128x256xf8E4M3FN>, tensor<1x2xf32>) -> tensor<4x128xbf16>
  return %y : tensor<4x128xbf16>
}

// Quantize the activation at run time, then the block-scaled matmul consumes both results.
// CHECK-LABEL: func.func @matmul$after_activation_quantize
// CHECK-SAME: (%[[X:[^:]+]]: tensor<1x4x256xf32>, %[[W_Q:[^:]+]]: tensor<64x256xf8E4M3FN>, %[[W_SCALE:[^:]+]]: tensor<1x2xf32>)
// CHECK: %[[XQ:.*]]:2 = "fp8.quantize"(%[[X]])
// CHECK-NEXT: %[[Y:.*]] = "fp8.matmul"(%[[XQ]]#0, %[[XQ]]#1, %[[W_Q]], %[[W_SCALE]])
// CHECK-SAME: -> tensor<1x4x64xf32>
func.func @matmul$after_activation_quantize(%x: tensor<1x4x256xf32>, %w_q: tensor<64x256xf8E4M3FN>,
                                            %w_scale: tensor<1x2xf32>) -> tensor<1x4x64xf32> {
  %x_q, %x_scale = "fp8.quantize"(%x) {block_shape = array<i64: 128>, pow2_scale = false}
    : (tensor<1x4x256xf32>) -> (tensor<1x4x256xf8E4M3FN>, tensor<1x4x2xf32>)
  %y = "fp8.matmul"(%x_q, %x_scale, %w_q, %w_scale) {block_n = 128 : i64, block_k = 128 : i64, out_dtype = "float32"}
    : (tensor<1x4x256xf8E4M3FN>, tensor<1x4x2xf32>, tensor<64x256xf8E4M3FN>, tensor<1x2xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// Grouped matmul over E = 3 stacked experts ([E, N, K] = [3, 192, 256]): weight scales
// [E, ceil(N/128), ceil(K/128)], offsets [E + 1], rows P = 40.
// CHECK-LABEL: func.func @grouped_matmul$experts
// CHECK: %[[Y:.*]] = "fp8.grouped_matmul"({{[^)]*}})
// CHECK-SAME: {block_k = 128 : i64, block_n = 128 : i64, out_dtype = "bfloat16"}
// CHECK-SAME: -> tensor<40x192xbf16>
func.func @grouped_matmul$experts(%x_q: tensor<40x256xf8E4M3FN>, %x_scale: tensor<40x2xf32>,
                                  %w_q: tensor<3x192x256xf8E4M3FN>, %w_scale: tensor<3x2x2xf32>,
                                  %offsets: tensor<4xi64>) -> tensor<40x192xbf16> {
  %y = "fp8.grouped_matmul"(%x_q, %x_scale, %w_q, %w_scale, %offsets) {block_n = 128 : i64, block_k = 128 : i64, out_dtype = "bfloat16"}
    : (tensor<40x256xf8E4M3FN>, tensor<40x2xf32>, tensor<3x192x256xf8E4M3FN>, tensor<3x2x2xf32>, tensor<4xi64>) -> tensor<40x192xbf16>
  return %y : tensor<40x192xbf16>
}
