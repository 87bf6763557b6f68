// RUN: not mlacc-opt %s --split-input-file '--accel-lower=device=edge-npu' 2>&1 | filecheck %s
// RUN: not mlacc-opt %s --split-input-file '--accel-lower=device=edge-npu fp8-fallback=bf16' 2>/dev/null | filecheck %s --check-prefix=FALLBACK
// RUN: not mlacc-opt %s '--accel-lower=device=no-such-npu' 2>&1 | filecheck %s --check-prefix=UNKNOWN

// UNKNOWN: error: unknown device 'no-such-npu' (presets: datacenter-npu, edge-npu, h100-like, h200-like; or a .toml file)

// An FP8 matmul on a device without an FP8 rate is an error naming the fix...
// CHECK: error: cannot lower 'fp8.matmul' for device 'edge-npu': device 'edge-npu' has no fp8 tensor-engine rate (it has bf16, fp32) (compile with fp8_fallback='bf16' to run FP8 matmuls at the bf16 rate)
// ... which, given, runs it at the bf16 rate and says so on the kernel.
// FALLBACK: "accel.matmul"() {{{.*}}dtype = "bf16"
// FALLBACK: accel.notes = ["no FP8 on edge-npu: runs at the bf16 rate"]
func.func @fp8(%xq: !torch.vtensor<[4,256],f8E4M3FN>, %xs: !torch.vtensor<[4,2],f32>, %wq: !torch.vtensor<[128,256],f8E4M3FN>, %ws: !torch.vtensor<[1,2],f32>) -> !torch.vtensor<[4,128],bf16> {
  %y = "fp8.matmul"(%xq, %xs, %wq, %ws) {block_k = 128 : i64, block_n = 128 : i64, out_dtype = "bfloat16"} : (!torch.vtensor<[4,256],f8E4M3FN>, !torch.vtensor<[4,2],f32>, !torch.vtensor<[128,256],f8E4M3FN>, !torch.vtensor<[1,2],f32>) -> !torch.vtensor<[4,128],bf16>
  return %y : !torch.vtensor<[4,128],bf16>
}

// -----

// A row that does not fit the scratchpad twice (double buffering) cannot be tiled.
// CHECK: error: cannot lower 'mla.rms_norm' for device 'edge-npu': the smallest mla.rms_norm row tile (1) needs 3276800 bytes of scratchpad; the device has 1048576
func.func @too_wide(%x: !torch.vtensor<[2,163840],f32>, %g: !torch.vtensor<[163840],f32>) -> !torch.vtensor<[2,163840],f32> {
  %n = "mla.rms_norm"(%x, %g) {eps = 1.0e-6 : f64} : (!torch.vtensor<[2,163840],f32>, !torch.vtensor<[163840],f32>) -> !torch.vtensor<[2,163840],f32>
  return %n : !torch.vtensor<[2,163840],f32>
}
