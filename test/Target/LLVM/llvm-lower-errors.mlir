// RUN: not mlacc-opt %s --split-input-file --llvm-lower 2>&1 | filecheck %s

// An op without a lowering is an error at its location naming it and the target.
// CHECK: llvm-lower-errors.mlir:7:8: error: op 'moe.experts' is not supported by target 'llvm'
func.func @experts(%x: !torch.vtensor<[4,8],f32>, %w: !torch.vtensor<[4,2],f32>, %i: !torch.vtensor<[4,2],si64>,
                   %g: !torch.vtensor<[3,6,8],f32>, %u: !torch.vtensor<[3,6,8],f32>, %d: !torch.vtensor<[3,8,6],f32>) -> !torch.vtensor<[4,8],f32> {
  %y = "moe.experts"(%x, %w, %i, %g, %u, %d) : (!torch.vtensor<[4,8],f32>, !torch.vtensor<[4,2],f32>, !torch.vtensor<[4,2],si64>, !torch.vtensor<[3,6,8],f32>, !torch.vtensor<[3,6,8],f32>, !torch.vtensor<[3,8,6],f32>) -> !torch.vtensor<[4,8],f32>
  return %y : !torch.vtensor<[4,8],f32>
}
