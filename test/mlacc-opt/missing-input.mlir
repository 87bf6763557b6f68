// RUN: not mlacc-opt %t.does-not-exist.mlir 2>&1 | filecheck %s
// RUN: not mlacc-opt %s %s 2>&1 | filecheck %s --check-prefix=TWO
// RUN: not mlacc-opt %S 2>&1 | filecheck %s --check-prefix=DIR

// CHECK: mlacc-opt: error: cannot open input file '{{.*}}.does-not-exist.mlir': No such file or directory
// CHECK-NOT: Traceback
// TWO: mlacc-opt: error: too many input files: {{.*}}missing-input.mlir {{.*}}missing-input.mlir (give one, or '-') (see mlacc-opt --help)
// DIR: mlacc-opt: error: cannot open input file '{{.*}}mlacc-opt': Is a directory
