// RUN: mlacc-opt %s --split-input-file --verify-diagnostics

// Every user-facing verifier error of the `moe` ops (N=4 tokens, D=64, E=8 experts, top_k=2).

func.func @router$unknown_score_func(%x: tensor<4x64xf32>, %gate: tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>) {
  // expected-error @+1 {{attribute 'score_func' must be sigmoid or softmax, got 'relu'}}
  %w, %i = "moe.router"(%x, %gate) {
      score_func = "relu", top_k = 2 : i64, n_groups = 1 : i64, topk_group = 1 : i64,
      group_score = "max", route_scale = 1.0 : f64, norm_topk_prob = true,
      operandSegmentSizes = array<i32: 1, 1, 0>}
    : (tensor<4x64xf32>, tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>)
  return %w, %i : tensor<4x2xf32>, tensor<4x2xi64>
}

// -----

func.func @router$unknown_group_score(%x: tensor<4x64xf32>, %gate: tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>) {
  // expected-error @+1 {{attribute 'group_score' must be top2_sum or max, got 'mean'}}
  %w, %i = "moe.router"(%x, %gate) {
      score_func = "sigmoid", top_k = 2 : i64, n_groups = 4 : i64, topk_group = 2 : i64,
      group_score = "mean", route_scale = 1.0 : f64, norm_topk_prob = true,
      operandSegmentSizes = array<i32: 1, 1, 0>}
    : (tensor<4x64xf32>, tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>)
  return %w, %i : tensor<4x2xf32>, tensor<4x2xi64>
}

// -----

func.func @router$top_k_over_experts(%x: tensor<4x64xf32>, %gate: tensor<8x64xf32>) -> (tensor<4x9xf32>, tensor<4x9xi64>) {
  // expected-error @+1 {{top_k (9) must be <= the number of experts (8)}}
  %w, %i = "moe.router"(%x, %gate) {
      score_func = "softmax", top_k = 9 : i64, n_groups = 1 : i64, topk_group = 1 : i64,
      group_score = "max", route_scale = 1.0 : f64, norm_topk_prob = true,
      operandSegmentSizes = array<i32: 1, 1, 0>}
    : (tensor<4x64xf32>, tensor<8x64xf32>) -> (tensor<4x9xf32>, tensor<4x9xi64>)
  return %w, %i : tensor<4x9xf32>, tensor<4x9xi64>
}

// -----

func.func @router$top_k_over_selected_groups(%x: tensor<4x64xf32>, %gate: tensor<8x64xf32>) -> (tensor<4x6xf32>, tensor<4x6xi64>) {
  // expected-error @+1 {{top_k (6) exceeds the 4 experts in the 2 selected group(s)}}
  %w, %i = "moe.router"(%x, %gate) {
      score_func = "sigmoid", top_k = 6 : i64, n_groups = 4 : i64, topk_group = 2 : i64,
      group_score = "top2_sum", route_scale = 1.0 : f64, norm_topk_prob = true,
      operandSegmentSizes = array<i32: 1, 1, 0>}
    : (tensor<4x64xf32>, tensor<8x64xf32>) -> (tensor<4x6xf32>, tensor<4x6xi64>)
  return %w, %i : tensor<4x6xf32>, tensor<4x6xi64>
}

// -----

func.func @router$groups_do_not_divide(%x: tensor<4x64xf32>, %gate: tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>) {
  // expected-error @+1 {{8 experts do not split into 3 groups}}
  %w, %i = "moe.router"(%x, %gate) {
      score_func = "sigmoid", top_k = 2 : i64, n_groups = 3 : i64, topk_group = 2 : i64,
      group_score = "top2_sum", route_scale = 1.0 : f64, norm_topk_prob = true,
      operandSegmentSizes = array<i32: 1, 1, 0>}
    : (tensor<4x64xf32>, tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>)
  return %w, %i : tensor<4x2xf32>, tensor<4x2xi64>
}

// -----

func.func @router$topk_group_over_n_groups(%x: tensor<4x64xf32>, %gate: tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>) {
  // expected-error @+1 {{topk_group (5) must be <= n_groups (4)}}
  %w, %i = "moe.router"(%x, %gate) {
      score_func = "sigmoid", top_k = 2 : i64, n_groups = 4 : i64, topk_group = 5 : i64,
      group_score = "top2_sum", route_scale = 1.0 : f64, norm_topk_prob = true,
      operandSegmentSizes = array<i32: 1, 1, 0>}
    : (tensor<4x64xf32>, tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>)
  return %w, %i : tensor<4x2xf32>, tensor<4x2xi64>
}

// -----

func.func @router$bias_size(%x: tensor<4x64xf32>, %gate: tensor<8x64xf32>, %bias: tensor<16xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>) {
  // expected-error @+1 {{bias size is 16, expected 8}}
  %w, %i = "moe.router"(%x, %gate, %bias) {
      score_func = "sigmoid", top_k = 2 : i64, n_groups = 1 : i64, topk_group = 1 : i64,
      group_score = "top2_sum", route_scale = 1.0 : f64, norm_topk_prob = true,
      operandSegmentSizes = array<i32: 1, 1, 1>}
    : (tensor<4x64xf32>, tensor<8x64xf32>, tensor<16xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>)
  return %w, %i : tensor<4x2xf32>, tensor<4x2xi64>
}

// -----

func.func @router$gate_columns(%x: tensor<4x64xf32>, %gate: tensor<8x32xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>) {
  // expected-error @+1 {{weight columns is 32, expected 64}}
  %w, %i = "moe.router"(%x, %gate) {
      score_func = "softmax", top_k = 2 : i64, n_groups = 1 : i64, topk_group = 1 : i64,
      group_score = "max", route_scale = 1.0 : f64, norm_topk_prob = true,
      operandSegmentSizes = array<i32: 1, 1, 0>}
    : (tensor<4x64xf32>, tensor<8x32xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>)
  return %w, %i : tensor<4x2xf32>, tensor<4x2xi64>
}

// -----

func.func @router$norm_topk_prob_not_a_bool(%x: tensor<4x64xf32>, %gate: tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>) {
  // expected-error @+1 {{attribute 'norm_topk_prob' must be true or false, got 1}}
  %w, %i = "moe.router"(%x, %gate) {
      score_func = "softmax", top_k = 2 : i64, n_groups = 1 : i64, topk_group = 1 : i64,
      group_score = "max", route_scale = 1.0 : f64, norm_topk_prob = 1 : i64,
      operandSegmentSizes = array<i32: 1, 1, 0>}
    : (tensor<4x64xf32>, tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>)
  return %w, %i : tensor<4x2xf32>, tensor<4x2xi64>
}

// -----

func.func @router$wrong_indices_type(%x: tensor<4x64xf32>, %gate: tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi32>) {
  // expected-error @+1 {{result 'indices' has type [4,2]xint32, expected [4,2]xint64}}
  %w, %i = "moe.router"(%x, %gate) {
      score_func = "softmax", top_k = 2 : i64, n_groups = 1 : i64, topk_group = 1 : i64,
      group_score = "max", route_scale = 1.0 : f64, norm_topk_prob = true,
      operandSegmentSizes = array<i32: 1, 1, 0>}
    : (tensor<4x64xf32>, tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi32>)
  return %w, %i : tensor<4x2xf32>, tensor<4x2xi32>
}

// -----

func.func @experts$rank2_weights(%x: tensor<4x64xf32>, %weights: tensor<4x2xf32>, %indices: tensor<4x2xi64>,
                                  %gate: tensor<32x64xf32>, %up: tensor<2x32x64xf32>, %down: tensor<2x64x32xf32>) -> tensor<4x64xf32> {
  // expected-error @+1 {{w_gate must have rank 3, got rank 2 ([32,64]xfloat32)}}
  %y = "moe.experts"(%x, %weights, %indices, %gate, %up, %down)
    : (tensor<4x64xf32>, tensor<4x2xf32>, tensor<4x2xi64>, tensor<32x64xf32>, tensor<2x32x64xf32>,
       tensor<2x64x32xf32>) -> tensor<4x64xf32>
  return %y : tensor<4x64xf32>
}

// -----

func.func @experts$expert_count(%x: tensor<4x64xf32>, %weights: tensor<4x2xf32>, %indices: tensor<4x2xi64>,
                                %gate: tensor<2x32x64xf32>, %up: tensor<3x32x64xf32>, %down: tensor<2x64x32xf32>) -> tensor<4x64xf32> {
  // expected-error @+1 {{w_up experts is 3, expected 2}}
  %y = "moe.experts"(%x, %weights, %indices, %gate, %up, %down)
    : (tensor<4x64xf32>, tensor<4x2xf32>, tensor<4x2xi64>, tensor<2x32x64xf32>, tensor<3x32x64xf32>,
       tensor<2x64x32xf32>) -> tensor<4x64xf32>
  return %y : tensor<4x64xf32>
}

// -----

func.func @experts$down_shape(%x: tensor<4x64xf32>, %weights: tensor<4x1xf32>, %indices: tensor<4x1xi64>,
                              %gate: tensor<1x32x64xf32>, %up: tensor<1x32x64xf32>, %down: tensor<1x32x64xf32>) -> tensor<4x64xf32> {
  // expected-error @+1 {{w_down rows (model dim) is 32, expected 64}}
  %y = "moe.experts"(%x, %weights, %indices, %gate, %up, %down)
    : (tensor<4x64xf32>, tensor<4x1xf32>, tensor<4x1xi64>, tensor<1x32x64xf32>, tensor<1x32x64xf32>,
       tensor<1x32x64xf32>) -> tensor<4x64xf32>
  return %y : tensor<4x64xf32>
}

// -----

func.func @experts$routing_rows(%x: tensor<4x64xf32>, %weights: tensor<3x1xf32>, %indices: tensor<3x1xi64>,
                                %gate: tensor<1x32x64xf32>, %up: tensor<1x32x64xf32>, %down: tensor<1x64x32xf32>) -> tensor<4x64xf32> {
  // expected-error @+1 {{weights rows (tokens) is 3, expected 4}}
  %y = "moe.experts"(%x, %weights, %indices, %gate, %up, %down)
    : (tensor<4x64xf32>, tensor<3x1xf32>, tensor<3x1xi64>, tensor<1x32x64xf32>, tensor<1x32x64xf32>,
       tensor<1x64x32xf32>) -> tensor<4x64xf32>
  return %y : tensor<4x64xf32>
}

// -----

func.func @dispatch$float_indices(%x: tensor<4x64xf32>, %indices: tensor<4x2xf32>)
    -> (tensor<32x64xf32>, tensor<4x2xi64>, tensor<9xi64>) {
  // expected-error @+1 {{indices must have element type int32 or int64, got float32}}
  %x_sorted, %row_of, %offsets = "moe.dispatch"(%x, %indices) {num_experts = 8 : i64, block_size = 4 : i64}
    : (tensor<4x64xf32>, tensor<4x2xf32>) -> (tensor<32x64xf32>, tensor<4x2xi64>, tensor<9xi64>)
  return %x_sorted, %row_of, %offsets : tensor<32x64xf32>, tensor<4x2xi64>, tensor<9xi64>
}

// -----

func.func @dispatch$wrong_padded_rows(%x: tensor<4x64xf32>, %indices: tensor<4x2xi64>)
    -> (tensor<8x64xf32>, tensor<4x2xi64>, tensor<9xi64>) {
  // expected-error @+1 {{result 'x_sorted' has type [8,64]xfloat32, expected [32,64]xfloat32}}
  %x_sorted, %row_of, %offsets = "moe.dispatch"(%x, %indices) {num_experts = 8 : i64, block_size = 4 : i64}
    : (tensor<4x64xf32>, tensor<4x2xi64>) -> (tensor<8x64xf32>, tensor<4x2xi64>, tensor<9xi64>)
  return %x_sorted, %row_of, %offsets : tensor<8x64xf32>, tensor<4x2xi64>, tensor<9xi64>
}

// -----

func.func @dispatch$zero_block(%x: tensor<4x64xf32>, %indices: tensor<4x2xi64>)
    -> (tensor<8x64xf32>, tensor<4x2xi64>, tensor<9xi64>) {
  // expected-error @+1 {{attribute 'block_size' must be positive, got 0}}
  %x_sorted, %row_of, %offsets = "moe.dispatch"(%x, %indices) {num_experts = 8 : i64, block_size = 0 : i64}
    : (tensor<4x64xf32>, tensor<4x2xi64>) -> (tensor<8x64xf32>, tensor<4x2xi64>, tensor<9xi64>)
  return %x_sorted, %row_of, %offsets : tensor<8x64xf32>, tensor<4x2xi64>, tensor<9xi64>
}

// -----

func.func @grouped_matmul$offsets_size(%rows: tensor<32x64xf32>, %w: tensor<8x64x64xf32>, %offsets: tensor<8xi64>) -> tensor<32x64xf32> {
  // expected-error @+1 {{expert_offsets size (num_experts + 1) is 8, expected 9}}
  %h = "moe.grouped_matmul"(%rows, %w, %offsets) : (tensor<32x64xf32>, tensor<8x64x64xf32>, tensor<8xi64>) -> tensor<32x64xf32>
  return %h : tensor<32x64xf32>
}

// -----

func.func @grouped_matmul$weight_rank(%rows: tensor<32x64xf32>, %w: tensor<64x64xf32>, %offsets: tensor<9xi64>) -> tensor<32x64xf32> {
  // expected-error @+1 {{w must have rank 3, got rank 2}}
  %h = "moe.grouped_matmul"(%rows, %w, %offsets) : (tensor<32x64xf32>, tensor<64x64xf32>, tensor<9xi64>) -> tensor<32x64xf32>
  return %h : tensor<32x64xf32>
}

// -----

func.func @grouped_matmul$k_mismatch(%rows: tensor<32x32xf32>, %w: tensor<8x64x64xf32>, %offsets: tensor<9xi64>) -> tensor<32x64xf32> {
  // expected-error @+1 {{x columns (w's K) is 32, expected 64}}
  %h = "moe.grouped_matmul"(%rows, %w, %offsets) : (tensor<32x32xf32>, tensor<8x64x64xf32>, tensor<9xi64>) -> tensor<32x64xf32>
  return %h : tensor<32x64xf32>
}

// -----

func.func @swiglu$odd_width(%h: tensor<32x63xf32>) -> tensor<32x31xf32> {
  // expected-error @+1 {{h last dim must be even (gate and up halves), got 63}}
  %a = "moe.swiglu"(%h) : (tensor<32x63xf32>) -> tensor<32x31xf32>
  return %a : tensor<32x31xf32>
}

// -----

func.func @combine$integer_weights(%y: tensor<32x64xf32>, %row_of: tensor<4x2xi64>, %weights: tensor<4x2xi64>) -> tensor<4x64xf32> {
  // expected-error @+1 {{weights must have element type bfloat16 or float16 or float32 or float64, got int64}}
  %out = "moe.combine"(%y, %row_of, %weights) : (tensor<32x64xf32>, tensor<4x2xi64>, tensor<4x2xi64>) -> tensor<4x64xf32>
  return %out : tensor<4x64xf32>
}

// -----

func.func @combine$top_k_mismatch(%y: tensor<32x64xf32>, %row_of: tensor<4x2xi64>, %weights: tensor<4x1xf32>) -> tensor<4x64xf32> {
  // expected-error @+1 {{indices columns (top_k) is 2, expected 1}}
  %out = "moe.combine"(%y, %row_of, %weights) : (tensor<32x64xf32>, tensor<4x2xi64>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %out : tensor<4x64xf32>
}

// -----

func.func @mlp$up_shape(%x: tensor<1x4x64xf32>, %gate: tensor<48x64xf32>, %up: tensor<32x64xf32>,
                        %down: tensor<64x48xf32>) -> tensor<1x4x64xf32> {
  // expected-error @+1 {{w_up rows is 32, expected 48}}
  %y = "moe.mlp"(%x, %gate, %up, %down) : (tensor<1x4x64xf32>, tensor<48x64xf32>, tensor<32x64xf32>, tensor<64x48xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}
