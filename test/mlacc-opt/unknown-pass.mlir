// RUN: not mlacc-opt %s --no-such-pass 2>&1 | filecheck %s --check-prefix=FLAG
// RUN: not mlacc-opt %s --pass-pipeline='builtin.module(canonicalize,no-such-pass)' 2>&1 | filecheck %s --check-prefix=PIPELINE
// RUN: not mlacc-opt %s --pass-pipeline='builtin.module(func.func(no-such-pass))' 2>&1 | filecheck %s --check-prefix=NESTED
// RUN: not mlacc-opt %s --pass-pipeline='builtin.module(func.func(test-fail-on{op=func.return}))' 2>&1 | filecheck %s --check-prefix=MLACC-NESTED
// RUN: not mlacc-opt %s --pass-pipeline='builtin.module(cse' 2>&1 | filecheck %s --check-prefix=SYNTAX
// RUN: not mlacc-opt %s --canonicalize --pass-pipeline='builtin.module(cse)' 2>&1 | filecheck %s --check-prefix=BOTH

// Unknown passes are reported before the input is read, as one line, with no traceback.

// FLAG-NOT: Traceback
// FLAG: mlacc-opt: error: unknown command line argument '--no-such-pass': not a mlacc-opt option, an mlacc pass or an upstream MLIR pass (see mlacc-opt --help)
// FLAG-NOT: error

// PIPELINE: mlacc-opt: error: unknown pass 'no-such-pass' (mlacc-opt --help lists mlacc's passes; upstream MLIR passes are accepted by name)
// PIPELINE-NOT: error

// NESTED: mlacc-opt: error: unknown pass 'no-such-pass'

// MLACC-NESTED: mlacc-opt: error: mlacc pass 'test-fail-on' runs on the module; use it at the top level of the pipeline, not nested in 'func.func(...)'

// SYNTAX: mlacc-opt: error: unbalanced '(' in pipeline element 'builtin.module(cse'

// BOTH: mlacc-opt: error: --pass-pipeline cannot be combined with pass flags (--canonicalize) (see mlacc-opt --help)

func.func @f() {
  return
}
