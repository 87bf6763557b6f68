// RUN: mlacc-opt %s | mlacc-opt | filecheck %s
// RUN: mlacc-opt %s --mlir-print-op-generic | mlacc-opt | filecheck %s

// Round trip of every `moe` op. Shapes: N=4 tokens, model dim D=64, E=8 routed experts in
// 4 groups, top_k=2, expert intermediate I=32, dispatch blocks of 4 rows
// (P = N*top_k + E*(block_size-1) = 32 rows).

// DeepSeek-V3 gate: sigmoid scores, aux-loss-free bias, group-limited (top-2-sum) routing.
// CHECK-LABEL: func.func @router$v3_sigmoid_bias_grouped
// CHECK-SAME: (%[[X:[^:]+]]: tensor<4x64xf32>, %[[GATE:[^:]+]]: tensor<8x64xf32>, %[[BIAS:[^:]+]]: tensor<8xf32>)
// CHECK: %[[ROUTE:.*]]:2 = "moe.router"(%[[X]], %[[GATE]], %[[BIAS]])
// CHECK-SAME: group_score = "top2_sum", n_groups = 4 : i64, norm_topk_prob = true, operandSegmentSizes = array<i32: 1, 1, 1>, route_scale = 2.500000e+00 : f64, score_func = "sigmoid", top_k = 2 : i64, topk_group = 2 : i64
// CHECK-SAME: -> (tensor<4x2xf32>, tensor<4x2xi64>)
// CHECK: return %[[ROUTE]]#0, %[[ROUTE]]#1
func.func @router$v3_sigmoid_bias_grouped(%x: tensor<4x64xf32>, %gate: tensor<8x64xf32>, %bias: tensor<8xf32>)
    -> (tensor<4x2xf32>, tensor<4x2xi64>) {
  %weights, %indices = "moe.router"(%x, %gate, %bias) {
      score_func = "sigmoid", top_k = 2 : i64, n_groups = 4 : i64, topk_group = 2 : i64,
      group_score = "top2_sum", route_scale = 2.5 : f64, norm_topk_prob = true,
      operandSegmentSizes = array<i32: 1, 1, 1>}
    : (tensor<4x64xf32>, tensor<8x64xf32>, tensor<8xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>)
  return %weights, %indices : tensor<4x2xf32>, tensor<4x2xi64>
}

// DeepSeek-V2 gate: softmax scores, no bias, greedy top-k, weights not renormalized.
// CHECK-LABEL: func.func @router$v2_softmax_no_bias
// CHECK-SAME: (%[[X:[^:]+]]: tensor<4x64xf32>, %[[GATE:[^:]+]]: tensor<8x64xf32>)
// CHECK: %[[ROUTE:.*]]:2 = "moe.router"(%[[X]], %[[GATE]])
// CHECK-SAME: norm_topk_prob = false, operandSegmentSizes = array<i32: 1, 1, 0>
// CHECK-SAME: score_func = "softmax"
// CHECK: return %[[ROUTE]]#0, %[[ROUTE]]#1
func.func @router$v2_softmax_no_bias(%x: tensor<4x64xf32>, %gate: tensor<8x64xf32>)
    -> (tensor<4x2xf32>, tensor<4x2xi64>) {
  %weights, %indices = "moe.router"(%x, %gate) {
      score_func = "softmax", top_k = 2 : i64, n_groups = 1 : i64, topk_group = 1 : i64,
      group_score = "max", route_scale = 1.0 : f64, norm_topk_prob = false,
      operandSegmentSizes = array<i32: 1, 1, 0>}
    : (tensor<4x64xf32>, tensor<8x64xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>)
  return %weights, %indices : tensor<4x2xf32>, tensor<4x2xi64>
}

// CHECK-LABEL: func.func @router$dynamic_tokens
// CHECK: "moe.router"
// CHECK-SAME: -> (tensor<?x2xf32>, tensor<?x2xi64>)
func.func @router$dynamic_tokens(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>)
    -> (tensor<?x2xf32>, tensor<?x2xi64>) {
  %weights, %indices = "moe.router"(%x, %gate) {
      score_func = "softmax", top_k = 2 : i64, n_groups = 1 : i64, topk_group = 1 : i64,
      group_score = "max", route_scale = 1.0 : f64, norm_topk_prob = true,
      operandSegmentSizes = array<i32: 1, 1, 0>}
    : (tensor<?x64xf32>, tensor<8x64xf32>) -> (tensor<?x2xf32>, tensor<?x2xi64>)
  return %weights, %indices : tensor<?x2xf32>, tensor<?x2xi64>
}

// Per-expert form (what capture produces): stacked expert weights, one FFN per expert.
// CHECK-LABEL: func.func @experts$two_experts
// CHECK-SAME: (%[[X:[^:]+]]: tensor<4x64xf32>, %[[WEIGHTS:[^:]+]]: tensor<4x2xf32>, %[[INDICES:[^:]+]]: tensor<4x2xi64>, %[[GATE:[^:]+]]: tensor<2x32x64xf32>, %[[UP:[^:]+]]: tensor<2x32x64xf32>, %[[DOWN:[^:]+]]: tensor<2x64x32xf32>)
// CHECK: %[[Y:.*]] = "moe.experts"(%[[X]], %[[WEIGHTS]], %[[INDICES]], %[[GATE]], %[[UP]], %[[DOWN]])
// CHECK-SAME: -> tensor<4x64xf32>
// CHECK: return %[[Y]]
func.func @experts$two_experts(%x: tensor<4x64xf32>, %weights: tensor<4x2xf32>, %indices: tensor<4x2xi64>,
                               %gate: tensor<2x32x64xf32>, %up: tensor<2x32x64xf32>,
                               %down: tensor<2x64x32xf32>) -> tensor<4x64xf32> {
  %y = "moe.experts"(%x, %weights, %indices, %gate, %up, %down)
    : (tensor<4x64xf32>, tensor<4x2xf32>, tensor<4x2xi64>, tensor<2x32x64xf32>, tensor<2x32x64xf32>,
       tensor<2x64x32xf32>) -> tensor<4x64xf32>
  return %y : tensor<4x64xf32>
}

// CHECK-LABEL: func.func @experts$vtensor_top1
// CHECK: "moe.experts"
// CHECK-SAME: -> !torch.vtensor<[4,64],bf16>
func.func @experts$vtensor_top1(%x: !torch.vtensor<[4,64],bf16>, %weights: !torch.vtensor<[4,1],f32>,
                                %indices: !torch.vtensor<[4,1],si64>, %gate: !torch.vtensor<[8,32,64],bf16>,
                                %up: !torch.vtensor<[8,32,64],bf16>, %down: !torch.vtensor<[8,64,32],bf16>)
    -> !torch.vtensor<[4,64],bf16> {
  %y = "moe.experts"(%x, %weights, %indices, %gate, %up, %down)
    : (!torch.vtensor<[4,64],bf16>, !torch.vtensor<[4,1],f32>, !torch.vtensor<[4,1],si64>,
       !torch.vtensor<[8,32,64],bf16>, !torch.vtensor<[8,32,64],bf16>, !torch.vtensor<[8,64,32],bf16>)
    -> !torch.vtensor<[4,64],bf16>
  return %y : !torch.vtensor<[4,64],bf16>
}

// CHECK-LABEL: func.func @dispatch$block4
// CHECK-SAME: (%[[X:[^:]+]]: tensor<4x64xf32>, %[[INDICES:[^:]+]]: tensor<4x2xi64>)
// CHECK: %[[D:.*]]:3 = "moe.dispatch"(%[[X]], %[[INDICES]]) {block_size = 4 : i64, num_experts = 8 : i64}
// CHECK-SAME: -> (tensor<32x64xf32>, tensor<4x2xi64>, tensor<9xi64>)
// CHECK: return %[[D]]#0, %[[D]]#1, %[[D]]#2
func.func @dispatch$block4(%x: tensor<4x64xf32>, %indices: tensor<4x2xi64>)
    -> (tensor<32x64xf32>, tensor<4x2xi64>, tensor<9xi64>) {
  %x_sorted, %row_of, %offsets = "moe.dispatch"(%x, %indices) {num_experts = 8 : i64, block_size = 4 : i64}
    : (tensor<4x64xf32>, tensor<4x2xi64>) -> (tensor<32x64xf32>, tensor<4x2xi64>, tensor<9xi64>)
  return %x_sorted, %row_of, %offsets : tensor<32x64xf32>, tensor<4x2xi64>, tensor<9xi64>
}

// CHECK-LABEL: func.func @grouped_matmul$gate_up
// CHECK-SAME: (%[[ROWS:[^:]+]]: tensor<32x64xf32>, %[[W:[^:]+]]: tensor<8x64x64xf32>, %[[OFFSETS:[^:]+]]: tensor<9xi64>)
// CHECK: %[[H:.*]] = "moe.grouped_matmul"(%[[ROWS]], %[[W]], %[[OFFSETS]])
// CHECK-SAME: -> tensor<32x64xf32>
// CHECK: return %[[H]]
func.func @grouped_matmul$gate_up(%rows: tensor<32x64xf32>, %w: tensor<8x64x64xf32>, %offsets: tensor<9xi64>) -> tensor<32x64xf32> {
  %h = "moe.grouped_matmul"(%rows, %w, %offsets) : (tensor<32x64xf32>, tensor<8x64x64xf32>, tensor<9xi64>) -> tensor<32x64xf32>
  return %h : tensor<32x64xf32>
}

// CHECK-LABEL: func.func @swiglu$fused_gate_up
// CHECK-SAME: (%[[H:[^:]+]]: tensor<32x64xf32>)
// CHECK: %[[A:.*]] = "moe.swiglu"(%[[H]]) : (tensor<32x64xf32>) -> tensor<32x32xf32>
// CHECK: return %[[A]]
func.func @swiglu$fused_gate_up(%h: tensor<32x64xf32>) -> tensor<32x32xf32> {
  %a = "moe.swiglu"(%h) : (tensor<32x64xf32>) -> tensor<32x32xf32>
  return %a : tensor<32x32xf32>
}

// CHECK-LABEL: func.func @combine$top2
// CHECK-SAME: (%[[Y:[^:]+]]: tensor<32x64xf32>, %[[ROW_OF:[^:]+]]: tensor<4x2xi64>, %[[WEIGHTS:[^:]+]]: tensor<4x2xf32>)
// CHECK: %[[OUT:.*]] = "moe.combine"(%[[Y]], %[[ROW_OF]], %[[WEIGHTS]])
// CHECK-SAME: -> tensor<4x64xf32>
// CHECK: return %[[OUT]]
func.func @combine$top2(%y: tensor<32x64xf32>, %row_of: tensor<4x2xi64>, %weights: tensor<4x2xf32>) -> tensor<4x64xf32> {
  %out = "moe.combine"(%y, %row_of, %weights) : (tensor<32x64xf32>, tensor<4x2xi64>, tensor<4x2xf32>) -> tensor<4x64xf32>
  return %out : tensor<4x64xf32>
}

// Shared experts (two of I=24, concatenated: 48) over [B, S, D] hidden states.
// CHECK-LABEL: func.func @mlp$shared_experts
// CHECK-SAME: (%[[X:[^:]+]]: tensor<1x4x64xf32>, %[[GATE:[^:]+]]: tensor<48x64xf32>, %[[UP:[^:]+]]: tensor<48x64xf32>, %[[DOWN:[^:]+]]: tensor<64x48xf32>)
// CHECK: %[[Y:.*]] = "moe.mlp"(%[[X]], %[[GATE]], %[[UP]], %[[DOWN]])
// CHECK-SAME: -> tensor<1x4x64xf32>
// CHECK: return %[[Y]]
func.func @mlp$shared_experts(%x: tensor<1x4x64xf32>, %gate: tensor<48x64xf32>, %up: tensor<48x64xf32>,
                              %down: tensor<64x48xf32>) -> tensor<1x4x64xf32> {
  %y = "moe.mlp"(%x, %gate, %up, %down) : (tensor<1x4x64xf32>, tensor<48x64xf32>, tensor<48x64xf32>, tensor<64x48xf32>) -> tensor<1x4x64xf32>
  return %y : tensor<1x4x64xf32>
}

// The grouped form `--moe-group-experts` produces: dispatch, gate/up matmul, SwiGLU, down
// matmul, combine; each op consumes its producer's result.
// CHECK-LABEL: func.func @grouped_moe$layer
// CHECK-SAME: (%[[X:[^:]+]]: tensor<4x64xf32>, %[[WEIGHTS:[^:]+]]: tensor<4x2xf32>, %[[INDICES:[^:]+]]: tensor<4x2xi64>, %[[W13:[^:]+]]: tensor<8x64x64xf32>, %[[W2:[^:]+]]: tensor<8x64x32xf32>)
// CHECK: %[[D:.*]]:3 = "moe.dispatch"(%[[X]], %[[INDICES]])
// CHECK-NEXT: %[[H:.*]] = "moe.grouped_matmul"(%[[D]]#0, %[[W13]], %[[D]]#2)
// CHECK-NEXT: %[[A:.*]] = "moe.swiglu"(%[[H]])
// CHECK-NEXT: %[[Y:.*]] = "moe.grouped_matmul"(%[[A]], %[[W2]], %[[D]]#2)
// CHECK-NEXT: %[[OUT:.*]] = "moe.combine"(%[[Y]], %[[D]]#1, %[[WEIGHTS]])
// CHECK-NEXT: return %[[OUT]]
func.func @grouped_moe$layer(%x: tensor<4x64xf32>, %weights: tensor<4x2xf32>, %indices: tensor<4x2xi64>,
                             %w13: tensor<8x64x64xf32>, %w2: tensor<8x64x32xf32>) -> tensor<4x64xf32> {
  %x_sorted, %row_of, %offsets = "moe.dispatch"(%x, %indices) {num_experts = 8 : i64, block_size = 4 : i64}
    : (tensor<4x64xf32>, tensor<4x2xi64>) -> (tensor<32x64xf32>, tensor<4x2xi64>, tensor<9xi64>)
  %h = "moe.grouped_matmul"(%x_sorted, %w13, %offsets) : (tensor<32x64xf32>, tensor<8x64x64xf32>, tensor<9xi64>) -> tensor<32x64xf32>
  %a = "moe.swiglu"(%h) : (tensor<32x64xf32>) -> tensor<32x32xf32>
  %y = "moe.grouped_matmul"(%a, %w2, %offsets) : (tensor<32x32xf32>, tensor<8x64x32xf32>, tensor<9xi64>) -> tensor<32x64xf32>
  %out = "moe.combine"(%y, %row_of, %weights) : (tensor<32x64xf32>, tensor<4x2xi64>, tensor<4x2xf32>) -> tensor<4x64xf32>
  return %out : tensor<4x64xf32>
}
