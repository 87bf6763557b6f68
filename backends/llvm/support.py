"""Run-time support the generated code may call, compiled into every llvm-target shared
object: the subset of MLIR's ``libmlir_c_runner_utils`` that lowered memref ops need (the
wheel ships no runner-utils library), and a minimal OpenMP runtime.

The OpenMP part implements the few ``__kmpc_*`` entry points that MLIR's OpenMP lowering of
``scf.parallel`` (``omp.parallel`` + static ``omp.wsloop``) calls: fork/join on a persistent
pthread pool, static loop partitioning, barrier. No libomp/libiomp5 is needed at run time (the
Debian package is not installed everywhere; the PyPI one is a 50 MB wheel). Nested parallel
regions run serially on the calling thread. ``mlacc_set_num_threads(n)`` sets the team size
(default: the CPUs this process may run on); ``mlacc_get_num_threads()`` reads it;
``mlacc_pool_workers()`` counts the worker threads started.
"""

SOURCE = r"""
/* Run-time support the generated code may call, linked into every llvm-target shared object
 * (the subset of MLIR's libmlir_c_runner_utils that lowered memref ops need). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

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

/* f32 -> bf16, round to nearest even (compiler-rt's builtin; LLVM calls it for bf16 vector
 * code it legalizes through f32 at -O0). bf16 is returned in xmm0's low 16 bits. */
float __truncsfbf2(float x) {
  uint32_t bits;
  memcpy(&bits, &x, 4);
  uint32_t out;
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    out = (bits >> 16) | 0x40u; /* quiet NaN */
  else
    out = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  float r = 0.0f;
  memcpy(&r, &out, 4);
  return r;
}

/* ---------------- minimal OpenMP runtime (the __kmpc_* subset MLIR's lowering uses) ------ */

#define MLACC_MAX_THREADS 256
#define MLACC_MAX_ARGS 64

typedef void (*mlacc_micro)(int32_t *, int32_t *, ...);

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;
static int pool_started = 0;     /* worker threads created */
static int want_threads = 0;     /* team size (0: not set yet -> CPUs) */
static volatile int64_t generation = 0;
static int team_size = 1;
static mlacc_micro task_fn;
static int32_t task_argc;
static void *task_args[MLACC_MAX_ARGS];
static volatile int32_t pending = 0;   /* workers still running the current region */
static volatile int32_t barrier_count = 0;
static volatile int32_t barrier_sense = 0;
static __thread int32_t my_tid = 0;
static __thread int32_t my_nth = 1;
static __thread int32_t in_region = 0;

static int default_threads(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

void mlacc_set_num_threads(int32_t n) {
  if (n < 1) n = 1;
  if (n > MLACC_MAX_THREADS) n = MLACC_MAX_THREADS;
  pthread_mutex_lock(&pool_lock);
  want_threads = n;
  pthread_mutex_unlock(&pool_lock);
}

int32_t mlacc_get_num_threads(void) {
  return want_threads > 0 ? want_threads : default_threads();
}

static void invoke(mlacc_micro fn, int32_t argc, void **args, int32_t tid) {
  int32_t gtid = tid, btid = tid;
  typedef void (*f0)(int32_t *, int32_t *);
  switch (argc) {
#define P void *
  case 0: ((f0)fn)(&gtid, &btid); break;
  default: {
    /* every captured value is passed by pointer: call with up to MLACC_MAX_ARGS pointers
       (extra trailing arguments are ignored by the callee under the SysV/AAPCS ABIs) */
#define P8 P, P, P, P, P, P, P, P
    typedef void (*fN)(int32_t *, int32_t *, P8, P8, P8, P8, P8, P8, P8, P8);
#undef P8
    void *a[MLACC_MAX_ARGS] = {0};
    for (int32_t i = 0; i < argc && i < MLACC_MAX_ARGS; ++i) a[i] = args[i];
    ((fN)fn)(&gtid, &btid, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10],
             a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20], a[21],
             a[22], a[23], a[24], a[25], a[26], a[27], a[28], a[29], a[30], a[31], a[32],
             a[33], a[34], a[35], a[36], a[37], a[38], a[39], a[40], a[41], a[42], a[43],
             a[44], a[45], a[46], a[47], a[48], a[49], a[50], a[51], a[52], a[53], a[54],
             a[55], a[56], a[57], a[58], a[59], a[60], a[61], a[62], a[63]);
  }
#undef P
  }
}

static void *worker(void *arg) {
  int32_t tid = (int32_t)(intptr_t)arg;
  int64_t seen = 0;
  for (;;) {
    pthread_mutex_lock(&pool_lock);
    while (generation == seen) pthread_cond_wait(&pool_wake, &pool_lock);
    seen = generation;
    int nth = team_size;
    pthread_mutex_unlock(&pool_lock);
    if (tid < nth) {
      my_tid = tid;
      my_nth = nth;
      in_region = 1;
      invoke(task_fn, task_argc, task_args, tid);
      in_region = 0;
      __atomic_sub_fetch(&pending, 1, __ATOMIC_ACQ_REL);
    }
  }
  return 0;
}

static int started_workers = 0;

static void ensure_workers(int nth) {
  /* called with pool_lock held */
  while (started_workers < nth - 1) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 8 << 20);
    if (pthread_create(&t, &attr, worker, (void *)(intptr_t)(started_workers + 1)) != 0) {
      pthread_attr_destroy(&attr);
      break;
    }
    pthread_attr_destroy(&attr);
    started_workers++;
  }
  pool_started = 1;
}

/* Worker threads started so far (the calling thread is not counted). */
int32_t mlacc_pool_workers(void) {
  return started_workers;
}

int32_t __kmpc_global_thread_num(void *loc) {
  (void)loc;
  return my_tid;
}

void __kmpc_push_num_threads(void *loc, int32_t gtid, int32_t n) {
  (void)loc;
  (void)gtid;
  (void)n;
}

void __kmpc_fork_call(void *loc, int32_t argc, mlacc_micro fn, ...) {
  (void)loc;
  void *args[MLACC_MAX_ARGS];
  va_list ap;
  va_start(ap, fn);
  for (int32_t i = 0; i < argc && i < MLACC_MAX_ARGS; ++i) args[i] = va_arg(ap, void *);
  va_end(ap);
  int nth = mlacc_get_num_threads();
  if (in_region || nth <= 1) { /* nested or single-threaded: run serially */
    int32_t save_tid = my_tid, save_nth = my_nth, save_in = in_region;
    my_tid = 0;
    my_nth = 1;
    in_region = 1;
    invoke(fn, argc, args, 0);
    my_tid = save_tid;
    my_nth = save_nth;
    in_region = save_in;
    return;
  }
  pthread_mutex_lock(&pool_lock);
  ensure_workers(nth);
  if (nth > started_workers + 1) nth = started_workers + 1;
  task_fn = fn;
  task_argc = argc;
  for (int32_t i = 0; i < argc && i < MLACC_MAX_ARGS; ++i) task_args[i] = args[i];
  team_size = nth;
  pending = nth - 1;
  barrier_count = 0;
  generation++;
  pthread_cond_broadcast(&pool_wake);
  pthread_mutex_unlock(&pool_lock);
  my_tid = 0;
  my_nth = nth;
  in_region = 1;
  invoke(fn, argc, args, 0);
  in_region = 0;
  my_nth = 1;
  while (__atomic_load_n(&pending, __ATOMIC_ACQUIRE) > 0) sched_yield();
}

void __kmpc_barrier(void *loc, int32_t gtid) {
  (void)loc;
  (void)gtid;
  if (my_nth <= 1) return;
  int32_t sense = __atomic_load_n(&barrier_sense, __ATOMIC_ACQUIRE);
  if (__atomic_add_fetch(&barrier_count, 1, __ATOMIC_ACQ_REL) == my_nth) {
    __atomic_store_n(&barrier_count, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&barrier_sense, 1 - sense, __ATOMIC_RELEASE);
  } else {
    while (__atomic_load_n(&barrier_sense, __ATOMIC_ACQUIRE) == sense) sched_yield();
  }
}

/* Static partition of the inclusive range [*lower, *upper] step incr among the team. */
#define STATIC_INIT(NAME, T, ST)                                                            \
  void NAME(void *loc, int32_t gtid, int32_t sched, int32_t *last, T *lower, T *upper,      \
            ST *stride, ST incr, ST chunk) {                                                \
    (void)loc;                                                                              \
    (void)gtid;                                                                             \
    int64_t nth = my_nth, tid = my_tid;                                                     \
    if (incr == 0) incr = 1;                                                                \
    int64_t lo = (int64_t)*lower, hi = (int64_t)*upper;                                     \
    int64_t trip = incr > 0 ? (hi - lo) / incr + 1 : (lo - hi) / (-incr) + 1;               \
    if (trip <= 0 || nth <= 1) {                                                            \
      if (last) *last = trip > 0;                                                           \
      *stride = (ST)(trip > 0 ? trip * incr : incr);                                        \
      return;                                                                               \
    }                                                                                       \
    if (sched == 33 && chunk > 0) { /* static chunked: round robin over chunks */          \
      int64_t span = (int64_t)chunk * incr;                                                 \
      *stride = (ST)(span * nth);                                                           \
      *lower = (T)(lo + span * tid);                                                        \
      *upper = (T)(lo + span * tid + span - incr);                                          \
      if (last) *last = ((trip - 1) / chunk) % nth == tid;                                  \
      return;                                                                               \
    }                                                                                       \
    int64_t small = trip / nth, extra = trip % nth;                                         \
    int64_t first = tid * small + (tid < extra ? tid : extra);                              \
    int64_t count = small + (tid < extra ? 1 : 0);                                          \
    *stride = (ST)(trip * incr);                                                            \
    if (last) *last = tid == nth - 1 || (count > 0 && first + count == trip);               \
    if (count == 0) {                                                                       \
      *lower = (T)(hi + (incr > 0 ? 1 : -1));                                               \
      *upper = (T)hi;                                                                       \
      return;                                                                               \
    }                                                                                       \
    *lower = (T)(lo + first * incr);                                                        \
    *upper = (T)(lo + (first + count - 1) * incr);                                          \
  }

STATIC_INIT(__kmpc_for_static_init_4, int32_t, int32_t)
STATIC_INIT(__kmpc_for_static_init_4u, uint32_t, int32_t)
STATIC_INIT(__kmpc_for_static_init_8, int64_t, int64_t)
STATIC_INIT(__kmpc_for_static_init_8u, uint64_t, int64_t)

void __kmpc_for_static_fini(void *loc, int32_t gtid) {
  (void)loc;
  (void)gtid;
}
"""
