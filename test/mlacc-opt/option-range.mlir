// RUN: not mlacc-opt %s --mla-absorb-weights=peak-tflops=-1 2>&1 | filecheck %s --check-prefix=NEGATIVE
// RUN: not mlacc-opt %s --pass-pipeline='builtin.module(mla-absorb-weights{bandwidth-gbs=nan})' 2>&1 | filecheck %s --check-prefix=NAN
// RUN: not mlacc-opt %s --mla-absorb-weights=peak-tflops=inf 2>&1 | filecheck %s --check-prefix=INF
// RUN: not mlacc-opt %s --quantize-fp8=weight-block=3 2>&1 | filecheck %s --check-prefix=POW2
// RUN: not mlacc-opt %s --mla-fuse-rope=max-positions=999999999999 2>&1 | filecheck %s --check-prefix=TOO-BIG
// RUN: not mlacc-opt %s --moe-group-experts='histogram={4,-1}' 2>&1 | filecheck %s --check-prefix=ELEMENT
// RUN: not mlacc-opt %s --pass-pipeline='builtin.module(mla-absorb-weights{absorb=never absorb=always})' 2>&1 | filecheck %s --check-prefix=TWICE
// RUN: not mlacc-opt %s '--mla-absorb-weights=peak_tflops=1 peak-tflops=2' 2>&1 | filecheck %s --check-prefix=TWICE-SPELLINGS
// RUN: not mlacc-opt %s --pass-pipeline= 2>&1 | filecheck %s --check-prefix=EMPTY
// RUN: not mlacc-opt %s --pass-pipeline='builtin.module()' 2>&1 | filecheck %s --check-prefix=EMPTY
// RUN: not mlacc-opt %s --pass-pipeline='func.func(builtin.module(cse))' 2>&1 | filecheck %s --check-prefix=NESTED
// RUN: not mlacc-opt %s --accel-lower=buffers=99 2>&1 | filecheck %s --check-prefix=TARGET-PASS
// RUN: mlacc-opt --help | filecheck %s --check-prefix=HELP

// Every pass option is checked against the range its declaration gives (`option(...,
// positive=, min=, max=, power_of_two=)`); floats must be finite; an option given twice and
// pipelines that run nothing are errors. One line each, non-zero exit.

// TARGET-PASS: mlacc-opt: error: pass 'accel-lower': option 'buffers' must be <= 16, got 99
// NEGATIVE: mlacc-opt: error: pass 'mla-absorb-weights': option 'peak-tflops' must be positive, got -1.0
// NAN: mlacc-opt: error: pass 'mla-absorb-weights': option 'bandwidth-gbs' must be finite, got nan
// INF: mlacc-opt: error: pass 'mla-absorb-weights': option 'peak-tflops' must be finite, got inf
// POW2: mlacc-opt: error: pass 'quantize-fp8': option 'weight-block' must be a power of two, got 3
// TOO-BIG: mlacc-opt: error: pass 'mla-fuse-rope': option 'max-positions' must be <= 1048576, got 999999999999
// ELEMENT: mlacc-opt: error: pass 'moe-group-experts': option 'histogram' entry 1 must be >= 0, got -1.0
// TWICE: mlacc-opt: error: pass 'mla-absorb-weights': option 'absorb' is given twice
// TWICE-SPELLINGS: mlacc-opt: error: pass 'mla-absorb-weights': option 'peak-tflops' is given twice
// EMPTY: mlacc-opt: error: --pass-pipeline is empty: name at least one pass, or leave it out
// NESTED: mlacc-opt: error: 'builtin.module(...)' nested in 'func.func(...)' would run on nothing: a 'func.func' never contains a 'builtin.module'
// HELP: weight-block=<int> {{.*}}(default: 128; > 0, <= 4096, power of two)

func.func @f() {
  return
}
