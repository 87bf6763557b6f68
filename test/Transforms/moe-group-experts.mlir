// RUN: mlacc-opt %s --split-input-file --moe-group-experts | filecheck %s
// RUN: mlacc-opt %s --split-input-file --moe-group-experts=block-size=4 | filecheck %s --check-prefix=BLOCK4
// RUN: mlacc-opt %s --split-input-file --moe-group-experts=merge-shared=false | filecheck %s --check-prefix=NOMERGE
// RUN: mlacc-opt %s --split-input-file --pass-pipeline='builtin.module(moe-group-experts{groups=2 histogram={100,10,10,10} replicate=2})' | filecheck %s --check-prefix=PLACE
// RUN: mlacc-opt %s --split-input-file --moe-group-experts=groups=2 | filecheck %s --check-prefix=UNIFORM
// RUN: mlacc-opt %s --split-input-file --moe-group-experts -o %t.once.mlir
// RUN: mlacc-opt %t.once.mlir --split-input-file --moe-group-experts -o %t.twice.mlir
// RUN: diff %t.once.mlir %t.twice.mlir
// RUN: not mlacc-opt %s --split-input-file --moe-group-experts=block-size=0 2>&1 | filecheck %s --check-prefix=BAD-BLOCK
// RUN: not mlacc-opt %s --split-input-file --moe-group-experts=groups=3 2>&1 | filecheck %s --check-prefix=UNPLACEABLE
// RUN: not mlacc-opt %s --split-input-file '--moe-group-experts=groups=2,histogram={1,2}' 2>&1 | filecheck %s --check-prefix=BAD-HISTOGRAM

// `--moe-group-experts` turns each per-expert `moe.experts` into dispatch -> grouped gate/up
// matmul over the fused [E, 2I, D] weight -> swiglu -> grouped down matmul -> combine, merges a
// shared expert of the routed intermediate size as one more expert, and records its decisions
// as `mlacc.*` attributes. Running it twice changes nothing (the %t files must not differ).
// Shapes: N=4 tokens, D=16, E=4 routed experts of I=8, top_k=2.

// BAD-BLOCK: mlacc-opt: error: pass 'moe-group-experts': option 'block-size' must be positive, got 0
// BAD-BLOCK-NOT: error
// BAD-HISTOGRAM: error: moe-group-experts: cannot place experts: the histogram has 2 entries, expected one per expert (4)

// DeepSeek-V3 layer: sigmoid router with the correction bias; one shared expert (I_s = I)
// added to the routed output merges into the grouped form as expert 4.
// CHECK-LABEL: func.func @v3_sigmoid_bias_shared_merged
// CHECK-SAME: (%[[X:[^:]+]]: !torch.vtensor<[4,16],f32>)
// CHECK: %[[ROUTE:.*]]:2 = "moe.router"(%[[X]]
// CHECK-DAG: %[[GATE:.*]] = "mlacc.weight"() {key = "ffn.experts.w_gate"}
// CHECK-DAG: %[[UP:.*]] = "mlacc.weight"() {key = "ffn.experts.w_up"}
// CHECK-DAG: %[[DOWN:.*]] = "mlacc.weight"() {key = "ffn.experts.w_down"}
// CHECK-DAG: %[[S_GATE:.*]] = "mlacc.weight"() {key = "ffn.shared.w1"}
// CHECK-DAG: %[[S_UP:.*]] = "mlacc.weight"() {key = "ffn.shared.w3"}
// CHECK-DAG: %[[S_DOWN:.*]] = "mlacc.weight"() {key = "ffn.shared.w2"}
// CHECK-NOT: "moe.mlp"
// CHECK: %[[S_GATE3:.*]] = torch.aten.reshape %[[S_GATE]], %{{.*}} -> !torch.vtensor<[1,8,16],f32>
// CHECK: %[[GATE_LIST:.*]] = torch.prim.ListConstruct %[[GATE]], %[[S_GATE3]]
// CHECK: %[[GATE5:.*]] = torch.aten.cat %[[GATE_LIST]], %{{.*}} -> !torch.vtensor<[5,8,16],f32>
// CHECK: %[[S_UP3:.*]] = torch.aten.reshape %[[S_UP]], %{{.*}} -> !torch.vtensor<[1,8,16],f32>
// CHECK: %[[UP_LIST:.*]] = torch.prim.ListConstruct %[[UP]], %[[S_UP3]]
// CHECK: %[[UP5:.*]] = torch.aten.cat %[[UP_LIST]], %{{.*}} -> !torch.vtensor<[5,8,16],f32>
// CHECK: %[[S_DOWN3:.*]] = torch.aten.reshape %[[S_DOWN]], %{{.*}} -> !torch.vtensor<[1,16,8],f32>
// CHECK: %[[DOWN_LIST:.*]] = torch.prim.ListConstruct %[[DOWN]], %[[S_DOWN3]]
// CHECK: %[[DOWN5:.*]] = torch.aten.cat %[[DOWN_LIST]], %{{.*}} -> !torch.vtensor<[5,16,8],f32>
// CHECK: %[[SHARED_ID:.*]] = torch.constant.int 4
// CHECK: %[[SHARED_COL:.*]] = torch.aten.new_full %[[ROUTE]]#1, %{{.*}}, %[[SHARED_ID]], {{.*}} -> !torch.vtensor<[4,1],si64>
// CHECK: %[[IDX_LIST:.*]] = torch.prim.ListConstruct %[[ROUTE]]#1, %[[SHARED_COL]]
// CHECK: %[[INDICES:.*]] = torch.aten.cat %[[IDX_LIST]], %{{.*}} -> !torch.vtensor<[4,3],si64>
// CHECK: %[[ONE:.*]] = torch.constant.float 1.0
// CHECK: %[[ONES:.*]] = torch.aten.new_full %[[ROUTE]]#0, %{{.*}}, %[[ONE]], {{.*}} -> !torch.vtensor<[4,1],f32>
// CHECK: %[[W_LIST:.*]] = torch.prim.ListConstruct %[[ROUTE]]#0, %[[ONES]]
// CHECK: %[[WEIGHTS:.*]] = torch.aten.cat %[[W_LIST]], %{{.*}} -> !torch.vtensor<[4,3],f32>
// CHECK: %[[W13_LIST:.*]] = torch.prim.ListConstruct %[[GATE5]], %[[UP5]]
// CHECK: %[[W13:.*]] = torch.aten.cat %[[W13_LIST]], %{{.*}} -> !torch.vtensor<[5,16,16],f32>
// CHECK: %[[D:.*]]:3 = "moe.dispatch"(%[[X]], %[[INDICES]]) {block_size = 16 : i64, num_experts = 5 : i64}
// CHECK-SAME: -> (!torch.vtensor<[87,16],f32>, !torch.vtensor<[4,3],si64>, !torch.vtensor<[6],si64>)
// CHECK-NEXT: %[[H:.*]] = "moe.grouped_matmul"(%[[D]]#0, %[[W13]], %[[D]]#2)
// CHECK-NOT: mlacc.placement
// CHECK-SAME: -> !torch.vtensor<[87,16],f32>
// CHECK-NEXT: %[[A:.*]] = "moe.swiglu"(%[[H]]) {{.*}} -> !torch.vtensor<[87,8],f32>
// CHECK-NEXT: %[[Y:.*]] = "moe.grouped_matmul"(%[[A]], %[[DOWN5]], %[[D]]#2)
// CHECK-NEXT: %[[OUT:.*]] = "moe.combine"(%[[Y]], %[[D]]#1, %[[WEIGHTS]])
// CHECK-SAME: mlacc.shared_merged = true, mlacc.shared_reason = "shared intermediate size 8 = 1 x 8: runs as expert(s) 4 with weight 1 for every token"
// CHECK-SAME: -> !torch.vtensor<[4,16],f32>
// CHECK-NOT: torch.aten.add.Tensor
// CHECK-NEXT: return %[[OUT]]
// CHECK-NOT: "moe.experts"

// BLOCK4-LABEL: func.func @v3_sigmoid_bias_shared_merged
// BLOCK4: "moe.dispatch"({{.*}}) {block_size = 4 : i64, num_experts = 5 : i64}
// BLOCK4-SAME: -> (!torch.vtensor<[27,16],f32>, !torch.vtensor<[4,3],si64>, !torch.vtensor<[6],si64>)

// NOMERGE-LABEL: func.func @v3_sigmoid_bias_shared_merged
// NOMERGE: "moe.dispatch"({{.*}}) {block_size = 16 : i64, num_experts = 4 : i64}
// NOMERGE: %[[ROUTED:.*]] = "moe.combine"
// NOMERGE-SAME: mlacc.shared_merged = false, mlacc.shared_reason = "merge-shared=false"
// NOMERGE: %[[SHARED:.*]] = "moe.mlp"
// NOMERGE-SAME: mlacc.shared_merged = false, mlacc.shared_reason = "merge-shared=false"
// NOMERGE: torch.aten.add.Tensor %[[ROUTED]], %[[SHARED]]

// PLACE-LABEL: func.func @v3_sigmoid_bias_shared_merged
// PLACE: "moe.grouped_matmul"
// PLACE-SAME: mlacc.placement = {{\[}}[0, 1, 2], [0, 1, 3]]
// PLACE-SAME: mlacc.placement_load = [6.500000e+01, 6.500000e+01]
// PLACE-SAME: mlacc.placement_replicas = [2, 2, 1, 1]
// PLACE-SAME: mlacc.placement_shared = [4]
// PLACE-NEXT: "moe.swiglu"
// PLACE-NEXT: "moe.grouped_matmul"({{[^)]*}}) : (

// UNIFORM-LABEL: func.func @v3_sigmoid_bias_shared_merged
// UNIFORM: "moe.grouped_matmul"
// UNIFORM-SAME: mlacc.placement = {{\[}}[0, 2], [1, 3]], mlacc.placement_load = [2.000000e+00, 2.000000e+00], mlacc.placement_replicas = [1, 1, 1, 1]
func.func @v3_sigmoid_bias_shared_merged(%x: !torch.vtensor<[4,16],f32>) -> !torch.vtensor<[4,16],f32> {
  %gate = "mlacc.weight"() {key = "ffn.gate.weight"} : () -> !torch.vtensor<[4,16],f32>
  %bias = "mlacc.weight"() {key = "ffn.gate.bias"} : () -> !torch.vtensor<[4],f32>
  %weights, %indices = "moe.router"(%x, %gate, %bias) {
      score_func = "sigmoid", top_k = 2 : i64, n_groups = 2 : i64, topk_group = 1 : i64,
      group_score = "top2_sum", route_scale = 2.5 : f64, norm_topk_prob = true,
      operandSegmentSizes = array<i32: 1, 1, 1>}
    : (!torch.vtensor<[4,16],f32>, !torch.vtensor<[4,16],f32>, !torch.vtensor<[4],f32>)
    -> (!torch.vtensor<[4,2],f32>, !torch.vtensor<[4,2],si64>)
  %w_gate = "mlacc.weight"() {key = "ffn.experts.w_gate"} : () -> !torch.vtensor<[4,8,16],f32>
  %w_up = "mlacc.weight"() {key = "ffn.experts.w_up"} : () -> !torch.vtensor<[4,8,16],f32>
  %w_down = "mlacc.weight"() {key = "ffn.experts.w_down"} : () -> !torch.vtensor<[4,16,8],f32>
  // UNPLACEABLE: moe-group-experts.mlir:[[# @LINE + 1]]:13: error: moe-group-experts: cannot place experts: 4 experts do not fill 3 groups with equal slot counts using at most 0 extra replica(s)
  %routed = "moe.experts"(%x, %weights, %indices, %w_gate, %w_up, %w_down)
    : (!torch.vtensor<[4,16],f32>, !torch.vtensor<[4,2],f32>, !torch.vtensor<[4,2],si64>,
       !torch.vtensor<[4,8,16],f32>, !torch.vtensor<[4,8,16],f32>, !torch.vtensor<[4,16,8],f32>)
    -> !torch.vtensor<[4,16],f32>
  %s_gate = "mlacc.weight"() {key = "ffn.shared.w1"} : () -> !torch.vtensor<[8,16],f32>
  %s_up = "mlacc.weight"() {key = "ffn.shared.w3"} : () -> !torch.vtensor<[8,16],f32>
  %s_down = "mlacc.weight"() {key = "ffn.shared.w2"} : () -> !torch.vtensor<[16,8],f32>
  %shared = "moe.mlp"(%x, %s_gate, %s_up, %s_down)
    : (!torch.vtensor<[4,16],f32>, !torch.vtensor<[8,16],f32>, !torch.vtensor<[8,16],f32>,
       !torch.vtensor<[16,8],f32>) -> !torch.vtensor<[4,16],f32>
  %one = torch.constant.int 1
  %sum = torch.aten.add.Tensor %routed, %shared, %one
    : !torch.vtensor<[4,16],f32>, !torch.vtensor<[4,16],f32>, !torch.int -> !torch.vtensor<[4,16],f32>
  return %sum : !torch.vtensor<[4,16],f32>
}

// -----

// DeepSeek-V2 layer without shared experts: softmax router, no bias; the routed experts alone.
// CHECK-LABEL: func.func @v2_softmax_no_shared
// CHECK-SAME: (%[[X:[^:]+]]: !torch.vtensor<[4,16],f32>, %[[GATE:[^:]+]]: !torch.vtensor<[4,8,16],f32>, %[[UP:[^:]+]]: !torch.vtensor<[4,8,16],f32>, %[[DOWN:[^:]+]]: !torch.vtensor<[4,16,8],f32>)
// CHECK: %[[ROUTE:.*]]:2 = "moe.router"
// CHECK-SAME: score_func = "softmax"
// CHECK: %[[W13_LIST:.*]] = torch.prim.ListConstruct %[[GATE]], %[[UP]]
// CHECK: %[[W13:.*]] = torch.aten.cat %[[W13_LIST]], %{{.*}} -> !torch.vtensor<[4,16,16],f32>
// CHECK-NEXT: %[[D:.*]]:3 = "moe.dispatch"(%[[X]], %[[ROUTE]]#1) {block_size = 16 : i64, num_experts = 4 : i64}
// CHECK-SAME: -> (!torch.vtensor<[68,16],f32>, !torch.vtensor<[4,2],si64>, !torch.vtensor<[5],si64>)
// CHECK-NEXT: %[[H:.*]] = "moe.grouped_matmul"(%[[D]]#0, %[[W13]], %[[D]]#2)
// CHECK-NEXT: %[[A:.*]] = "moe.swiglu"(%[[H]])
// CHECK-NEXT: %[[Y:.*]] = "moe.grouped_matmul"(%[[A]], %[[DOWN]], %[[D]]#2)
// CHECK-NEXT: %[[OUT:.*]] = "moe.combine"(%[[Y]], %[[D]]#1, %[[ROUTE]]#0)
// CHECK-SAME: mlacc.shared_merged = false, mlacc.shared_reason = "no moe.mlp on the same tokens is added to the routed output"
// CHECK-NEXT: return %[[OUT]]
// CHECK-NOT: "moe.experts"

// BLOCK4-LABEL: func.func @v2_softmax_no_shared
// BLOCK4: "moe.dispatch"({{.*}}) {block_size = 4 : i64, num_experts = 4 : i64}
// BLOCK4-SAME: -> (!torch.vtensor<[20,16],f32>, !torch.vtensor<[4,2],si64>, !torch.vtensor<[5],si64>)

// PLACE-LABEL: func.func @v2_softmax_no_shared
// PLACE: "moe.grouped_matmul"
// PLACE-SAME: mlacc.placement = {{\[}}[0, 1, 2], [0, 1, 3]], mlacc.placement_load = [6.500000e+01, 6.500000e+01], mlacc.placement_replicas = [2, 2, 1, 1]}
// PLACE-NEXT: "moe.swiglu"
// PLACE-NEXT: "moe.grouped_matmul"({{[^)]*}}) : (
func.func @v2_softmax_no_shared(%x: !torch.vtensor<[4,16],f32>, %w_gate: !torch.vtensor<[4,8,16],f32>,
                                %w_up: !torch.vtensor<[4,8,16],f32>, %w_down: !torch.vtensor<[4,16,8],f32>)
    -> !torch.vtensor<[4,16],f32> {
  %gate = "mlacc.weight"() {key = "ffn.gate.weight"} : () -> !torch.vtensor<[4,16],f32>
  %weights, %indices = "moe.router"(%x, %gate) {
      score_func = "softmax", top_k = 2 : i64, n_groups = 1 : i64, topk_group = 1 : i64,
      group_score = "max", route_scale = 1.0 : f64, norm_topk_prob = false,
      operandSegmentSizes = array<i32: 1, 1, 0>}
    : (!torch.vtensor<[4,16],f32>, !torch.vtensor<[4,16],f32>)
    -> (!torch.vtensor<[4,2],f32>, !torch.vtensor<[4,2],si64>)
  %routed = "moe.experts"(%x, %weights, %indices, %w_gate, %w_up, %w_down)
    : (!torch.vtensor<[4,16],f32>, !torch.vtensor<[4,2],f32>, !torch.vtensor<[4,2],si64>,
       !torch.vtensor<[4,8,16],f32>, !torch.vtensor<[4,8,16],f32>, !torch.vtensor<[4,16,8],f32>)
    -> !torch.vtensor<[4,16],f32>
  return %routed : !torch.vtensor<[4,16],f32>
}

// -----

// A shared expert of intermediate size 12, not a multiple of the routed 8: it cannot become
// experts of the grouped matmul, so it stays a moe.mlp (saying why) and the add stays.
// CHECK-LABEL: func.func @shared_other_size_not_merged
// CHECK: %[[ROUTED:.*]] = "moe.combine"
// CHECK-SAME: mlacc.shared_merged = false, mlacc.shared_reason = "shared intermediate size 12 is not a multiple of the routed experts' 8"
// CHECK: %[[SHARED:.*]] = "moe.mlp"
// CHECK-SAME: mlacc.shared_merged = false, mlacc.shared_reason = "shared intermediate size 12 is not a multiple of the routed experts' 8"
// CHECK: %[[SUM:.*]] = torch.aten.add.Tensor %[[ROUTED]], %[[SHARED]]
// CHECK: return %[[SUM]]
// CHECK-NOT: "moe.experts"
func.func @shared_other_size_not_merged(%x: !torch.vtensor<[4,16],f32>, %weights: !torch.vtensor<[4,2],f32>,
                                        %indices: !torch.vtensor<[4,2],si64>) -> !torch.vtensor<[4,16],f32> {
  %w_gate = "mlacc.weight"() {key = "ffn.experts.w_gate"} : () -> !torch.vtensor<[4,8,16],f32>
  %w_up = "mlacc.weight"() {key = "ffn.experts.w_up"} : () -> !torch.vtensor<[4,8,16],f32>
  %w_down = "mlacc.weight"() {key = "ffn.experts.w_down"} : () -> !torch.vtensor<[4,16,8],f32>
  %routed = "moe.experts"(%x, %weights, %indices, %w_gate, %w_up, %w_down)
    : (!torch.vtensor<[4,16],f32>, !torch.vtensor<[4,2],f32>, !torch.vtensor<[4,2],si64>,
       !torch.vtensor<[4,8,16],f32>, !torch.vtensor<[4,8,16],f32>, !torch.vtensor<[4,16,8],f32>)
    -> !torch.vtensor<[4,16],f32>
  %s_gate = "mlacc.weight"() {key = "ffn.shared.w1"} : () -> !torch.vtensor<[12,16],f32>
  %s_up = "mlacc.weight"() {key = "ffn.shared.w3"} : () -> !torch.vtensor<[12,16],f32>
  %s_down = "mlacc.weight"() {key = "ffn.shared.w2"} : () -> !torch.vtensor<[16,12],f32>
  %shared = "moe.mlp"(%x, %s_gate, %s_up, %s_down)
    : (!torch.vtensor<[4,16],f32>, !torch.vtensor<[12,16],f32>, !torch.vtensor<[12,16],f32>,
       !torch.vtensor<[16,12],f32>) -> !torch.vtensor<[4,16],f32>
  %one = torch.constant.int 1
  %sum = torch.aten.add.Tensor %routed, %shared, %one
    : !torch.vtensor<[4,16],f32>, !torch.vtensor<[4,16],f32>, !torch.int -> !torch.vtensor<[4,16],f32>
  return %sum : !torch.vtensor<[4,16],f32>
}

// -----

// Two shared experts concatenated (I_s = 16 = 2 x 8, DeepSeek-V2's layout) become experts 4
// and 5: the down projection [D, 2I] is split as [D, 2, I] and permuted to [2, D, I].
// CHECK-LABEL: func.func @two_shared_experts_merged
// CHECK: %[[S_DOWN_SPLIT:.*]] = torch.aten.reshape %{{.*}} -> !torch.vtensor<[16,2,8],f32>
// CHECK: %[[S_DOWN3:.*]] = torch.aten.permute %[[S_DOWN_SPLIT]], %{{.*}} -> !torch.vtensor<[2,16,8],f32>
// CHECK: torch.prim.ListConstruct %{{.*}}, %[[S_DOWN3]]
// CHECK: %[[ID4:.*]] = torch.constant.int 4
// CHECK: %[[COL4:.*]] = torch.aten.new_full %{{.*}}, %{{.*}}, %[[ID4]],
// CHECK: %[[ID5:.*]] = torch.constant.int 5
// CHECK: %[[COL5:.*]] = torch.aten.new_full %{{.*}}, %{{.*}}, %[[ID5]],
// CHECK: torch.prim.ListConstruct %{{.*}}, %[[COL4]], %[[COL5]]
// CHECK: -> !torch.vtensor<[4,4],si64>
// CHECK: "moe.dispatch"({{.*}}) {block_size = 16 : i64, num_experts = 6 : i64}
// CHECK: "moe.combine"
// CHECK-SAME: mlacc.shared_merged = true, mlacc.shared_reason = "shared intermediate size 16 = 2 x 8: runs as expert(s) 4, 5 with weight 1 for every token"
// CHECK-NOT: "moe.mlp"
// CHECK-NOT: "moe.experts"

// PLACE-LABEL: func.func @two_shared_experts_merged
// PLACE: mlacc.placement_shared = [4, 5]
func.func @two_shared_experts_merged(%x: !torch.vtensor<[4,16],f32>, %weights: !torch.vtensor<[4,2],f32>,
                                     %indices: !torch.vtensor<[4,2],si64>) -> !torch.vtensor<[4,16],f32> {
  %w_gate = "mlacc.weight"() {key = "ffn.experts.w_gate"} : () -> !torch.vtensor<[4,8,16],f32>
  %w_up = "mlacc.weight"() {key = "ffn.experts.w_up"} : () -> !torch.vtensor<[4,8,16],f32>
  %w_down = "mlacc.weight"() {key = "ffn.experts.w_down"} : () -> !torch.vtensor<[4,16,8],f32>
  %routed = "moe.experts"(%x, %weights, %indices, %w_gate, %w_up, %w_down)
    : (!torch.vtensor<[4,16],f32>, !torch.vtensor<[4,2],f32>, !torch.vtensor<[4,2],si64>,
       !torch.vtensor<[4,8,16],f32>, !torch.vtensor<[4,8,16],f32>, !torch.vtensor<[4,16,8],f32>)
    -> !torch.vtensor<[4,16],f32>
  %s_gate = "mlacc.weight"() {key = "ffn.shared.w1"} : () -> !torch.vtensor<[16,16],f32>
  %s_up = "mlacc.weight"() {key = "ffn.shared.w3"} : () -> !torch.vtensor<[16,16],f32>
  %s_down = "mlacc.weight"() {key = "ffn.shared.w2"} : () -> !torch.vtensor<[16,16],f32>
  %shared = "moe.mlp"(%x, %s_gate, %s_up, %s_down)
    : (!torch.vtensor<[4,16],f32>, !torch.vtensor<[16,16],f32>, !torch.vtensor<[16,16],f32>,
       !torch.vtensor<[16,16],f32>) -> !torch.vtensor<[4,16],f32>
  %one = torch.constant.int 1
  %sum = torch.aten.add.Tensor %shared, %routed, %one
    : !torch.vtensor<[4,16],f32>, !torch.vtensor<[4,16],f32>, !torch.int -> !torch.vtensor<[4,16],f32>
  return %sum : !torch.vtensor<[4,16],f32>
}
