"""Run-time support the generated code may call, compiled into every llvm-target shared
object: the subset of MLIR's ``libmlir_c_runner_utils`` that lowered memref ops need (the
wheel ships no runner-utils library)."""

SOURCE = r"""
/* Run-time support the generated code may call, linked into every llvm-target shared object
 * (the subset of MLIR's libmlir_c_runner_utils that lowered memref ops need). */
#include <stdint.h>
#include <string.h>

typedef struct {
  int64_t rank;
  void *descriptor;
} UnrankedMemRef;

/* memref.copy between strided memrefs of the same shape (element size `elem`). */
void memrefCopy(int64_t elem, UnrankedMemRef *src, UnrankedMemRef *dst) {
  int64_t rank = src->rank;
  char **sd = (char **)src->descriptor, **dd = (char **)dst->descriptor;
  char *sp = sd[1], *dp = dd[1];
  int64_t *s = (int64_t *)(sd + 2), *d = (int64_t *)(dd + 2);
  int64_t soff = s[0], doff = d[0];
  int64_t *sizes = s + 1, *sstr = s + 1 + rank, *dstr = d + 1 + rank;
  int64_t index[64] = {0};
  int64_t total = 1;
  if (rank > 64) return;
  for (int64_t i = 0; i < rank; ++i) total *= sizes[i];
  if (total == 0) return;
  if (rank == 0) {
    memcpy(dp + doff * elem, sp + soff * elem, elem);
    return;
  }
  for (int64_t n = 0; n < total; ++n) {
    memcpy(dp + doff * elem, sp + soff * elem, elem);
    for (int64_t axis = rank - 1; axis >= 0; --axis) {
      index[axis]++;
      soff += sstr[axis];
      doff += dstr[axis];
      if (index[axis] < sizes[axis]) break;
      soff -= sstr[axis] * sizes[axis];
      doff -= dstr[axis] * sizes[axis];
      index[axis] = 0;
    }
  }
}
"""
