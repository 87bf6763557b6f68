// RUN: mlacc-opt %s --split-input-file --verify-diagnostics

// Every user-facing verifier error of the `fp8` ops.

func.func @quantize$integer_input(%x: tensor<4x256xi32>) -> (tensor<4x256xf8E4M3FN>, tensor<4x2xf32>) {
  // expected-error @+1 {{x must have element type bfloat16 or float16 or float32 or float64, got int32}}
  %q, %scale = "fp8.quantize"(%x) {block_shape = array<i64: 128>, pow2_scale = false}
    : (tensor<4x256xi32>) -> (tensor<4x256xf8E4M3FN>, tensor<4x2xf32>)
  return %q, %scale : tensor<4x256xf8E4M3FN>, tensor<4x2xf32>
}

// -----

func.func @quantize$block_rank_above_input_rank(%x: tensor<256xf32>) -> (tensor<256xf8E4M3FN>, tensor<2xf32>) {
  // expected-error @+1 {{block_shape [128, 128] must have 1 to 1 entries for x of rank 1}}
  %q, %scale = "fp8.quantize"(%x) {block_shape = array<i64: 128, 128>, pow2_scale = false}
    : (tensor<256xf32>) -> (tensor<256xf8E4M3FN>, tensor<2xf32>)
  return %q, %scale : tensor<256xf8E4M3FN>, tensor<2xf32>
}

// -----

func.func @quantize$zero_block(%x: tensor<4x256xf32>) -> (tensor<4x256xf8E4M3FN>, tensor<4x2xf32>) {
  // expected-error @+1 {{attribute 'block_shape' must be positive, got 0}}
  %q, %scale = "fp8.quantize"(%x) {block_shape = array<i64: 0>, pow2_scale = false}
    : (tensor<4x256xf32>) -> (tensor<4x256xf8E4M3FN>, tensor<4x2xf32>)
  return %q, %scale : tensor<4x256xf8E4M3FN>, tensor<4x2xf32>
}

// -----

func.func @quantize$scale_shape(%x: tensor<4x256xf32>) -> (tensor<4x256xf8E4M3FN>, tensor<4x1xf32>) {
  // expected-error @+1 {{result 'scale' has type [4,1]xfloat32, expected [4,2]xfloat32}}
  %q, %scale = "fp8.quantize"(%x) {block_shape = array<i64: 128>, pow2_scale = false}
    : (tensor<4x256xf32>) -> (tensor<4x256xf8E4M3FN>, tensor<4x1xf32>)
  return %q, %scale : tensor<4x256xf8E4M3FN>, tensor<4x1xf32>
}

// -----

func.func @quantize$e5m2_result(%x: tensor<4x256xf32>) -> (tensor<4x256xf8E5M2>, tensor<4x2xf32>) {
  // expected-error @+1 {{result 'q' has type [4,256]xfloat8_e5m2, expected [4,256]xfloat8_e4m3fn}}
  %q, %scale = "fp8.quantize"(%x) {block_shape = array<i64: 128>, pow2_scale = false}
    : (tensor<4x256xf32>) -> (tensor<4x256xf8E5M2>, tensor<4x2xf32>)
  return %q, %scale : tensor<4x256xf8E5M2>, tensor<4x2xf32>
}

// -----

func.func @dequantize$float_input(%q: tensor<4x256xf32>, %scale: tensor<4x2xf32>) -> tensor<4x256xf32> {
  // expected-error @+1 {{q must have element type float8_e4m3fn or float8_e5m2, got float32}}
  %x = "fp8.dequantize"(%q, %scale) {block_shape = array<i64: 128>, out_dtype = "float32"}
    : (tensor<4x256xf32>, tensor<4x2xf32>) -> tensor<4x256xf32>
  return %x : tensor<4x256xf32>
}

// -----

func.func @dequantize$scale_blocks(%q: tensor<256x128xf8E4M3FN>, %scale: tensor<1x1xf32>) -> tensor<256x128xf32> {
  // expected-error @+1 {{scale shape [1, 1] does not match blocks of q: expected [2, 1]}}
  %x = "fp8.dequantize"(%q, %scale) {block_shape = array<i64: 128, 128>, out_dtype = "float32"}
    : (tensor<256x128xf8E4M3FN>, tensor<1x1xf32>) -> tensor<256x128xf32>
  return %x : tensor<256x128xf32>
}

// -----

func.func @dequantize$bf16_scale(%q: tensor<4x256xf8E4M3FN>, %scale: tensor<4x2xbf16>) -> tensor<4x256xf32> {
  // expected-error @+1 {{scale must have element type float32, got bfloat16}}
  %x = "fp8.dequantize"(%q, %scale) {block_shape = array<i64: 128>, out_dtype = "float32"}
    : (tensor<4x256xf8E4M3FN>, tensor<4x2xbf16>) -> tensor<4x256xf32>
  return %x : tensor<4x256xf32>
}

// -----

func.func @dequantize$unknown_out_dtype(%q: tensor<4x256xf8E4M3FN>, %scale: tensor<4x2xf32>) -> tensor<4x256xf32> {
  // expected-error @+1 {{attribute 'out_dtype' must be a float dtype, got 'int8'}}
  %x = "fp8.dequantize"(%q, %scale) {block_shape = array<i64: 128>, out_dtype = "int8"}
    : (tensor<4x256xf8E4M3FN>, tensor<4x2xf32>) -> tensor<4x256xf32>
  return %x : tensor<4x256xf32>
}

// -----

func.func @matmul$k_mismatch(%x_q: tensor<4x128xf8E4M3FN>, %x_scale: tensor<4x1xf32>,
                             %w_q: tensor<128x256xf8E4M3FN>, %w_scale: tensor<1x2xf32>) -> tensor<4x128xf32> {
  // expected-error @+1 {{x_q last dim (K) is 128, expected 256}}
  %y = "fp8.matmul"(%x_q, %x_scale, %w_q, %w_scale) {block_n = 128 : i64, block_k = 128 : i64, out_dtype = "float32"}
    : (tensor<4x128xf8E4M3FN>, tensor<4x1xf32>, tensor<128x256xf8E4M3FN>, tensor<1x2xf32>) -> tensor<4x128xf32>
  return %y : tensor<4x128xf32>
}

// -----

func.func @matmul$weight_scale_blocks(%x_q: tensor<4x256xf8E4M3FN>, %x_scale: tensor<4x2xf32>,
                                      %w_q: tensor<256x256xf8E4M3FN>, %w_scale: tensor<1x2xf32>) -> tensor<4x256xf32> {
  // expected-error @+1 {{w_scale rows (N blocks) is 1, expected 2}}
  %y = "fp8.matmul"(%x_q, %x_scale, %w_q, %w_scale) {block_n = 128 : i64, block_k = 128 : i64, out_dtype = "float32"}
    : (tensor<4x256xf8E4M3FN>, tensor<4x2xf32>, tensor<256x256xf8E4M3FN>, tensor<1x2xf32>) -> tensor<4x256xf32>
  return %y : tensor<4x256xf32>
}

// -----

func.func @matmul$activation_scale_blocks(%x_q: tensor<4x256xf8E4M3FN>, %x_scale: tensor<4x1xf32>,
                                          %w_q: tensor<128x256xf8E4M3FN>, %w_scale: tensor<1x2xf32>) -> tensor<4x128xf32> {
  // expected-error @+1 {{x_scale last dim (K blocks) is 1, expected 2}}
  %y = "fp8.matmul"(%x_q, %x_scale, %w_q, %w_scale) {block_n = 128 : i64, block_k = 128 : i64, out_dtype = "float32"}
    : (tensor<4x256xf8E4M3FN>, tensor<4x1xf32>, tensor<128x256xf8E4M3FN>, tensor<1x2xf32>) -> tensor<4x128xf32>
  return %y : tensor<4x128xf32>
}

// -----

func.func @matmul$unquantized_weight(%x_q: tensor<4x256xf8E4M3FN>, %x_scale: tensor<4x2xf32>,
                                     %w: tensor<128x256xbf16>, %w_scale: tensor<1x2xf32>) -> tensor<4x128xf32> {
  // expected-error @+1 {{w_q must have element type float8_e4m3fn or float8_e5m2, got bfloat16}}
  %y = "fp8.matmul"(%x_q, %x_scale, %w, %w_scale) {block_n = 128 : i64, block_k = 128 : i64, out_dtype = "float32"}
    : (tensor<4x256xf8E4M3FN>, tensor<4x2xf32>, tensor<128x256xbf16>, tensor<1x2xf32>) -> tensor<4x128xf32>
  return %y : tensor<4x128xf32>
}

// -----

func.func @matmul$zero_block_k(%x_q: tensor<4x256xf8E4M3FN>, %x_scale: tensor<4x2xf32>,
                               %w_q: tensor<128x256xf8E4M3FN>, %w_scale: tensor<1x2xf32>) -> tensor<4x128xf32> {
  // expected-error @+1 {{attribute 'block_k' must be positive, got 0}}
  %y = "fp8.matmul"(%x_q, %x_scale, %w_q, %w_scale) {block_n = 128 : i64, block_k = 0 : i64, out_dtype = "float32"}
    : (tensor<4x256xf8E4M3FN>, tensor<4x2xf32>, tensor<128x256xf8E4M3FN>, tensor<1x2xf32>) -> tensor<4x128xf32>
  return %y : tensor<4x128xf32>
}

// -----

func.func @grouped_matmul$offsets_size(%x_q: tensor<40x256xf8E4M3FN>, %x_scale: tensor<40x2xf32>,
                                       %w_q: tensor<3x192x256xf8E4M3FN>, %w_scale: tensor<3x2x2xf32>,
                                       %offsets: tensor<3xi64>) -> tensor<40x192xf32> {
  // expected-error @+1 {{expert_offsets size (num_experts + 1) is 3, expected 4}}
  %y = "fp8.grouped_matmul"(%x_q, %x_scale, %w_q, %w_scale, %offsets) {block_n = 128 : i64, block_k = 128 : i64, out_dtype = "float32"}
    : (tensor<40x256xf8E4M3FN>, tensor<40x2xf32>, tensor<3x192x256xf8E4M3FN>, tensor<3x2x2xf32>, tensor<3xi64>) -> tensor<40x192xf32>
  return %y : tensor<40x192xf32>
}

// -----

func.func @grouped_matmul$weight_scale_blocks(%x_q: tensor<40x256xf8E4M3FN>, %x_scale: tensor<40x2xf32>,
                                              %w_q: tensor<3x192x256xf8E4M3FN>, %w_scale: tensor<3x1x2xf32>,
                                              %offsets: tensor<4xi64>) -> tensor<40x192xf32> {
  // expected-error @+1 {{w_scale dim 1 (N blocks) is 1, expected 2}}
  %y = "fp8.grouped_matmul"(%x_q, %x_scale, %w_q, %w_scale, %offsets) {block_n = 128 : i64, block_k = 128 : i64, out_dtype = "float32"}
    : (tensor<40x256xf8E4M3FN>, tensor<40x2xf32>, tensor<3x192x256xf8E4M3FN>, tensor<3x1x2xf32>, tensor<4xi64>) -> tensor<40x192xf32>
  return %y : tensor<40x192xf32>
}

// -----

func.func @grouped_matmul$float_offsets(%x_q: tensor<40x256xf8E4M3FN>, %x_scale: tensor<40x2xf32>,
                                        %w_q: tensor<3x192x256xf8E4M3FN>, %w_scale: tensor<3x2x2xf32>,
                                        %offsets: tensor<4xf32>) -> tensor<40x192xf32> {
  // expected-error @+1 {{expert_offsets must have element type int32 or int64, got float32}}
  %y = "fp8.grouped_matmul"(%x_q, %x_scale, %w_q, %w_scale, %offsets) {block_n = 128 : i64, block_k = 128 : i64, out_dtype = "float32"}
    : (tensor<40x256xf8E4M3FN>, tensor<40x2xf32>, tensor<3x192x256xf8E4M3FN>, tensor<3x2x2xf32>, tensor<4xf32>) -> tensor<40x192xf32>
  return %y : tensor<40x192xf32>
}
