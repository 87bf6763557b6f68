// RUN: not mlacc-opt %s --split-input-file --llvm-lower 2>&1 | filecheck %s

// An op without a lowering is an error at its location naming it and the target.
// CHECK: llvm-lower-errors.mlir:7:8: error: op 'moe.experts' is not supported by target 'llvm'
func.func @experts(%x: !torch.vtensor<[4,8],f32>, %w: !torch.vtensor<[4,2],f32>, %i: !torch.vtensor<[4,2],si64>,
                   %g: !torch.vtensor<[3,6,8],f32>, %u: !torch.vtensor<[3,6,8],f32>, %d: !torch.vtensor<[3,8,6],f32>) -> !torch.vtensor<[4,8],f32> {
  %y = "moe.experts"(%x, %w, %i, %g, %u, %d) : (!torch.vtensor<[4,8],f32>, !torch.vtensor<[4,2],f32>, !torch.vtensor<[4,2],si64>, !torch.vtensor<[3,6,8],f32>, !torch.vtensor<[3,6,8],f32>, !torch.vtensor<[3,8,6],f32>) -> !torch.vtensor<[4,8],f32>
  return %y : !torch.vtensor<[4,8],f32>
}

// -----

// A paged cache (block_table operand) is not lowered yet: an error naming the operand.
// CHECK: llvm-lower-errors.mlir:16:8: error: cannot lower 'mla.cache_update' for target 'llvm': operand 'block_table' of 'mla.cache_update' is not lowered by the llvm target yet
func.func @paged(%pool: !torch.vtensor<[5,4,12],f32>, %e: !torch.vtensor<[1,1,12],f32>, %p: !torch.vtensor<[1,1],si64>, %bt: !torch.vtensor<[1,2],si32>) -> !torch.vtensor<[5,4,12],f32> {
  %c = "mla.cache_update"(%pool, %e, %p, %bt) {operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 1>, rope_layout = "none"} : (!torch.vtensor<[5,4,12],f32>, !torch.vtensor<[1,1,12],f32>, !torch.vtensor<[1,1],si64>, !torch.vtensor<[1,2],si32>) -> !torch.vtensor<[5,4,12],f32>
  return %c : !torch.vtensor<[5,4,12],f32>
}
