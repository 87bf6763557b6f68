// RUN: not mlacc-opt %s --test-fail-on=opp=mla.rms_norm 2>&1 | filecheck %s --check-prefix=UNKNOWN
// RUN: not mlacc-opt %s --pass-pipeline='builtin.module(test-fail-on{opp=mla.rms_norm})' 2>&1 | filecheck %s --check-prefix=UNKNOWN
// RUN: not mlacc-opt %s --test-fail-on 2>&1 | filecheck %s --check-prefix=REQUIRED
// RUN: not mlacc-opt %s --canonicalize=max-iterations=many 2>&1 | filecheck %s --check-prefix=UPSTREAM-VALUE
// RUN: not mlacc-opt %s --pass-pipeline='builtin.module(canonicalize{no-such-option=1})' 2>&1 | filecheck %s --check-prefix=UPSTREAM-NAME
// RUN: not mlacc-opt %s --split-input-file=yes 2>&1 | filecheck %s --check-prefix=TOOL-FLAG
// RUN: not mlacc-opt %s -o 2>&1 | filecheck %s --check-prefix=MISSING-VALUE

// A bad pass option names the pass and the option; one line, non-zero exit.

// UNKNOWN: mlacc-opt: error: pass 'test-fail-on' has no option 'opp' (its options: op)
// UNKNOWN-NOT: error
// REQUIRED: mlacc-opt: error: pass 'test-fail-on': option 'op' is required (e.g. test-fail-on{op=mla.attention})
// UPSTREAM-VALUE: mlacc-opt: error: pass 'canonicalize': for the --max-iterations option: 'many' value invalid
// UPSTREAM-NAME: mlacc-opt: error: pass 'canonicalize': no such option no-such-option
// TOOL-FLAG: mlacc-opt: error: option '--split-input-file' takes no value, got 'yes'
// MISSING-VALUE: mlacc-opt: error: option '-o' needs a value

func.func @f() {
  return
}
