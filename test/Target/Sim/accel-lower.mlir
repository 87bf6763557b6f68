// RUN: mlacc-opt %s --split-input-file '--accel-lower=device=edge-npu' | filecheck %s
// RUN: mlacc-opt %s --split-input-file '--accel-lower=device=edge-npu' -o %t.once.mlir
// RUN: mlacc-opt %t.once.mlir --split-input-file '--accel-lower=device=edge-npu' -o %t.twice.mlir
// RUN: diff %t.once.mlir %t.twice.mlir
// RUN: mlacc-opt %s --split-input-file '--accel-lower=device=h100-like buffers=1' | filecheck %s --check-prefix=H100

// Every graph op that moves data gets one accel.kernel right after it; weights, views and
// ops on weights alone get none. Lowering twice changes nothing (the %t files must not differ).

// CHECK-LABEL: func.func @decode_linear
// CHECK: %[[W:.*]] = "mlacc.weight"() {key = "layers.3.attn.wq_a.weight"}
// CHECK-NOT: accel.kernel
// CHECK: %[[Y:.*]] = torch.aten.linear
// CHECK-NEXT: "accel.kernel"(%[[Y]]) ({
// Decode: the 4x1024 activations (8 KiB) are loaded once per core and the weights stream in
// double-buffered 128x1024 tiles (256 KiB each, within the 1 MiB scratchpad); 2048/128 = 16
// column blocks over 2 cores = 8 tiles each.
// CHECK-NEXT: "accel.dma"() {bytes = 8192 : i64, direction = "once"}
// CHECK-NEXT: "accel.dma"() {bytes = 262144 : i64, direction = "in"}
// CHECK-NEXT: "accel.matmul"() {count = 1 : i64, dtype = "bf16", k = 1024 : i64, m = 4 : i64, n = 128 : i64}
// CHECK-NEXT: "accel.dma"() {bytes = 1024 : i64, direction = "out"}
// CHECK-NEXT: }) {accel.layer = 3 : i64, buffers = 2 : i64, chips = 1 : i64, cores = 2 : i64,
// CHECK-SAME: op = "torch.aten.linear", sram_bytes = {{[0-9]+}} : i64, tiles = 8 : i64}
// CHECK: %[[R:.*]] = torch.aten.reshape %[[Y]]
// CHECK-NOT: accel.kernel
// CHECK: return %[[R]]
// On h100-like the tile search spreads the 2048 output columns over 64 SMs (32 each: more SMs
// share the L2 bandwidth); one buffer (no double buffering) was asked for.
// H100-LABEL: func.func @decode_linear
// H100: "accel.kernel"
// H100-NEXT: "accel.dma"() {bytes = 8192 : i64, direction = "once"}
// H100-NEXT: "accel.dma"() {bytes = 65536 : i64, direction = "in"}
// H100: buffers = 1 : i64, chips = 1 : i64, cores = 64 : i64
func.func @decode_linear(%x: !torch.vtensor<[4,1024],bf16>) -> !torch.vtensor<[4,64,32],bf16> {
  %w = "mlacc.weight"() {key = "layers.3.attn.wq_a.weight"} : () -> !torch.vtensor<[2048,1024],bf16>
  %none = torch.constant.none
  %y = torch.aten.linear %x, %w, %none : !torch.vtensor<[4,1024],bf16>, !torch.vtensor<[2048,1024],bf16>, !torch.none -> !torch.vtensor<[4,2048],bf16>
  %c4 = torch.constant.int 4
  %c64 = torch.constant.int 64
  %c32 = torch.constant.int 32
  %shape = torch.prim.ListConstruct %c4, %c64, %c32 : (!torch.int, !torch.int, !torch.int) -> !torch.list<int>
  %r = torch.aten.reshape %y, %shape : !torch.vtensor<[4,2048],bf16>, !torch.list<int> -> !torch.vtensor<[4,64,32],bf16>
  return %r : !torch.vtensor<[4,64,32],bf16>
}

// -----

// A weight-only op (the fused gate/up concatenation) is prepared when the weights load: no
// kernel. The RMSNorm streams rows through the vector engine.
// CHECK-LABEL: func.func @weight_only_and_vector
// CHECK: torch.aten.cat
// CHECK-NOT: accel.kernel
// CHECK: %[[N:.*]] = "mla.rms_norm"
// CHECK-NEXT: "accel.kernel"(%[[N]]) ({
// CHECK-NEXT: "accel.dma"() {{{.*}}direction = "in"}
// CHECK-NEXT: "accel.vector"()
// CHECK-NEXT: "accel.dma"() {{{.*}}direction = "out"}
// CHECK-NEXT: }) {{{.*}}op = "mla.rms_norm"
func.func @weight_only_and_vector(%x: !torch.vtensor<[8,64],f32>) -> (!torch.vtensor<[8,64],f32>, !torch.vtensor<[64,64],f32>) {
  %a = "mlacc.weight"() {key = "layers.0.ffn.w1.weight"} : () -> !torch.vtensor<[32,64],f32>
  %b = "mlacc.weight"() {key = "layers.0.ffn.w3.weight"} : () -> !torch.vtensor<[32,64],f32>
  %list = torch.prim.ListConstruct %a, %b : (!torch.vtensor<[32,64],f32>, !torch.vtensor<[32,64],f32>) -> !torch.list<vtensor>
  %c0 = torch.constant.int 0
  %ab = torch.aten.cat %list, %c0 : !torch.list<vtensor>, !torch.int -> !torch.vtensor<[64,64],f32>
  %g = "mlacc.weight"() {key = "layers.0.attn_norm.weight"} : () -> !torch.vtensor<[64],f32>
  %n = "mla.rms_norm"(%x, %g) {eps = 1.0e-6 : f64} : (!torch.vtensor<[8,64],f32>, !torch.vtensor<[64],f32>) -> !torch.vtensor<[8,64],f32>
  return %n, %ab : !torch.vtensor<[8,64],f32>, !torch.vtensor<[64,64],f32>
}
