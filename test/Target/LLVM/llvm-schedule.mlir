// RUN: mlacc-opt %s --split-input-file --llvm-lower --llvm-schedule | filecheck %s
// RUN: mlacc-opt %s --split-input-file --llvm-lower '--llvm-schedule=threads=false' | filecheck %s --check-prefix=SERIAL

// `--llvm-schedule` tiles and vectorizes every contraction the lowering wrote. A linear layer
// on a weight stored [N, K] is a "dot" schedule: a thread level (scf.forall over column
// blocks), 4x4 register tiles of the output, and the K loop in steps of 16 carrying a
// vector<4x4x16xf32> partial in registers (multiply-adds that LLVM contracts to FMAs),
// reduced horizontally once per tile. (bf16 linears on a CPU with AVX512-BF16 use their own
// dot kernel instead: `ops/_bf16_dot.py`.)

// CHECK-LABEL: func.func private @__llvm_torch_aten_linear
// CHECK: scf.forall (%{{.*}}) in (16)
// CHECK: scf.for %{{.*}} = %c0 to %c8 step %c4
// CHECK: scf.for %{{.*}} = %c0 to %c32 step %c4
// CHECK: scf.for %{{.*}} = %c0 to %c256 step %c16 iter_args(%{{.*}} = %{{.*}}) -> (vector<4x4x16xf32>)
// CHECK: vector.transfer_read {{.*}} : tensor<4x16xf32>, vector<4x16xf32>
// CHECK: arith.mulf %{{.*}}, %{{.*}} fastmath<contract> : vector<4x4x16xf32>
// CHECK-NEXT: arith.addf %{{.*}}, %{{.*}} fastmath<contract> : vector<4x4x16xf32>
// CHECK: vector.reduction <add>, %{{.*}}, %{{.*}} : vector<16xf32> into f32
// CHECK-NOT: iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: return
// Without threads: the same tiles, no scf.forall.
// SERIAL-LABEL: func.func private @__llvm_torch_aten_linear
// SERIAL-NOT: scf.forall
// SERIAL: iter_args(%{{.*}} = %{{.*}}) -> (vector<4x4x16xf32>)
func.func @linear(%x: !torch.vtensor<[8,256],f32>) -> !torch.vtensor<[8,512],f32> {
  %w = "mlacc.weight"() {key = "w"} : () -> !torch.vtensor<[512,256],f32>
  %none = torch.constant.none
  %y = torch.aten.linear %x, %w, %none : !torch.vtensor<[8,256],f32>, !torch.vtensor<[512,256],f32>, !torch.none -> !torch.vtensor<[8,512],f32>
  return %y : !torch.vtensor<[8,512],f32>
}

// -----

// Batch-1 decode (a GEMV): one row, 8 output columns per register tile, K by 16.

// CHECK-LABEL: func.func private @__llvm_torch_aten_linear
// CHECK: scf.forall
// CHECK: scf.for %{{.*}} = %c0 to %c64 step %c8
// CHECK: scf.for %{{.*}} = %c0 to %c2048 step %c16 iter_args(%{{.*}} = %{{.*}}) -> (vector<8x16xf32>)
// CHECK: arith.mulf %{{.*}}, %{{.*}} fastmath<contract> : vector<8x16xf32>
// CHECK: vector.reduction <add>
func.func @gemv(%x: !torch.vtensor<[1,2048],f32>) -> !torch.vtensor<[1,1024],f32> {
  %w = "mlacc.weight"() {key = "w"} : () -> !torch.vtensor<[1024,2048],f32>
  %none = torch.constant.none
  %y = torch.aten.linear %x, %w, %none : !torch.vtensor<[1,2048],f32>, !torch.vtensor<[1024,2048],f32>, !torch.none -> !torch.vtensor<[1,1024],f32>
  return %y : !torch.vtensor<[1,1024],f32>
}

// -----

// Latent attention: the scores (q · latent^T, K innermost in both) are "dot" schedules;
// exp(scores - max) · V (the output's columns innermost in the latent cache) is an "outer"
// schedule: a 4x32 accumulator carried over the keys one at a time, with no division inside;
// the row sum divides the accumulated output once per element afterwards.

// CHECK-LABEL: func.func private @__llvm_mla_latent_attention
// CHECK: iter_args(%{{.*}} = %{{.*}}) -> (vector<4x4x16xf32>)
// CHECK: vector.reduction <add>
// CHECK: scf.for %{{.*}} = %c0 to %c64 step %c32
// CHECK: scf.for %{{.*}} = %c0 to %c32 step %c1 iter_args(%{{.*}} = %{{.*}}) -> (vector<4x32xf32>)
// CHECK-NOT: arith.divf
// CHECK: arith.mulf {{.*}} : vector<4x32xf32>
// CHECK-NEXT: arith.addf %{{.*}}, %{{.*}} : vector<4x32xf32>
// CHECK: vector.transfer_write
// CHECK: arith.divf %{{.*}}, %{{.*}} : f32
func.func @latent(%q: !torch.vtensor<[1,4,4,64],f32>, %qpe: !torch.vtensor<[1,4,4,16],f32>, %kv: !torch.vtensor<[1,32,80],f32>, %p: !torch.vtensor<[1,4],si64>) -> !torch.vtensor<[1,4,4,64],f32> {
  %o = "mla.latent_attention"(%q, %qpe, %kv, %p) {kv_lora_rank = 64 : i64, softmax_scale = 0.25 : f64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 0, 0>, rope_layout = "none"} : (!torch.vtensor<[1,4,4,64],f32>, !torch.vtensor<[1,4,4,16],f32>, !torch.vtensor<[1,32,80],f32>, !torch.vtensor<[1,4],si64>) -> !torch.vtensor<[1,4,4,64],f32>
  return %o : !torch.vtensor<[1,4,4,64],f32>
}
