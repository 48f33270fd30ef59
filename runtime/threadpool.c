/* threadpool.c — persistent pthreads behind tpool_for and a step's parallel_for.
 *
 * One job at a time: the caller writes the job (function, argument, range,
 * chunk count) into the pool, bumps the generation counter under the mutex
 * and broadcasts; each worker, on seeing a new generation, runs its chunk
 * (worker i takes chunk i; the caller takes chunk 0) and decrements
 * `pending`. Every worker acknowledges every job, even one with fewer chunks
 * than threads, so no worker can still be reading a job when the next one is
 * written. The last worker to finish signals the caller, which has spun for
 * a short while first. Waiting workers spin on the generation for a while
 * (~1 ms: a step's serial stretches between parallel kernels are shorter,
 * so between kernels nobody sleeps) before sleeping on the condition
 * variable. The mutex and the condition variables are touched only when
 * somebody sleeps: a sleeper announces itself (sleepers, caller_waiting)
 * under the mutex before re-checking its condition, and a notifier changes
 * the condition before reading that count, both sequentially consistent,
 * so either the notifier sees the sleeper and signals under the mutex, or
 * the sleeper sees the new condition and does not wait: no wake-up is lost,
 * and a job costs no system call while the threads are spinning.
 *
 * Pinning: when the pool has more than one thread, no more threads than
 * the CPUs the process may use (sched_getaffinity), and DPOC_PIN is not
 * "0", thread i is bound to the i-th allowed CPU (the caller, thread 0, to
 * the first; its own mask is put back by tpool_destroy). A pinned worker
 * keeps its caches and is never stacked on a core with another worker,
 * which an even split of the work needs to leave no core idle.
 *
 * Stacks: a matmul kernel keeps its packed blocks on the stack of the
 * thread that runs it (up to ~2.3 MiB, codegen/cg_gemm.c), so workers are
 * made with TPOOL_STACK_BYTES rather than whatever the C library's default
 * is under the caller's limits, and tpool_stack_ensure raises the soft
 * stack limit that bounds the main thread's growth (Linux checks it when
 * the stack grows, so raising it at run time is enough).
 */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

enum { SPIN_ITERS = 40000 }; /* ~1 ms of pause before a waiter sleeps */

typedef struct KernelCost {
    uintptr_t fn;
    double unit; /* cost per unit of work / grain */
} KernelCost;

typedef struct Worker {
    ThreadPool *pool;
    int index;
} Worker;

struct ThreadPool {
    int n;
    int pinned;          /* threads are bound to cpus[] */
    int cpus[CPU_SETSIZE];
    cpu_set_t caller_mask; /* the caller's affinity before pinning */
    pthread_t *threads;
    Worker *workers;
    int nstarted;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    atomic_uint_fast64_t gen;
    atomic_int pending;
    atomic_int stop;
    atomic_int sleepers;       /* workers inside (or about to enter) cond_wait(wake) */
    atomic_int caller_waiting; /* the caller is inside (or about to enter) cond_wait(done) */
    /* the current job (written by the caller before gen is bumped) */
    TpoolFn fn;
    void *arg;
    int64_t total;
    int k;
    KernelCost *costs; /* sorted by fn */
    int ncosts;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

void tpool_chunk(int64_t n, int k, int i, int64_t *b, int64_t *e) {
    int64_t q = n / k, r = n % k;
    *b = (int64_t)i * q + (i < r ? i : r);
    *e = *b + q + (i < r ? 1 : 0);
}

static void run_chunk(ThreadPool *p, int i) {
    if (i >= p->k) return;
    int64_t b, e;
    tpool_chunk(p->total, p->k, i, &b, &e);
    if (e > b) p->fn(p->arg, b, e);
}

static int pin_self(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

static void *worker_main(void *argp) {
    Worker *w = argp;
    ThreadPool *p = w->pool;
    uint64_t seen = 0;
    if (p->pinned) pin_self(p->cpus[w->index]);
    for (;;) {
        uint64_t g = atomic_load(&p->gen);
        for (int s = 0; g == seen && s < SPIN_ITERS && !atomic_load(&p->stop); s++) {
            cpu_relax();
            g = atomic_load(&p->gen);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = g;
        run_chunk(p, w->index);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_waiting)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

int tpool_stack_ensure(char *err, size_t errlen) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_STACK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= TPOOL_STACK_BYTES)
        return 0;
    rlim_t want = TPOOL_STACK_BYTES;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) want = rl.rlim_max;
    if (want > rl.rlim_cur) {
        struct rlimit raised = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_STACK, &raised) == 0) rl.rlim_cur = want;
    }
    if (rl.rlim_cur >= TPOOL_STACK_MIN_BYTES) return 0;
    char hard[32] = "unlimited";
    if (rl.rlim_max != RLIM_INFINITY) snprintf(hard, sizeof hard, "%llu KiB", (unsigned long long)rl.rlim_max / 1024);
    snprintf(err, errlen,
             "the stack size limit is %llu KiB (hard limit %s): the compiled kernels need at least %d KiB of stack "
             "on the calling thread; raise it (ulimit -s %d)",
             (unsigned long long)rl.rlim_cur / 1024, hard, TPOOL_STACK_MIN_BYTES / 1024, TPOOL_STACK_BYTES / 1024);
    return -1;
}

ThreadPool *tpool_create(int nthreads, char *err, size_t errlen) {
    if (nthreads < 1 || nthreads > 4096) {
        snprintf(err, errlen, "thread count %d is outside [1, 4096]", nthreads);
        return NULL;
    }
    if (tpool_stack_ensure(err, errlen)) return NULL;
    ThreadPool *p = calloc(1, sizeof *p);
    if (!p) return snprintf(err, errlen, "out of memory"), NULL;
    p->n = nthreads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->caller_waiting, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (nthreads == 1) return p;
    const char *pin = getenv("DPOC_PIN");
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if ((!pin || strcmp(pin, "0")) && sched_getaffinity(0, sizeof allowed, &allowed) == 0 &&
        CPU_COUNT(&allowed) >= nthreads) {
        int m = 0;
        for (int c = 0; c < CPU_SETSIZE && m < nthreads; c++)
            if (CPU_ISSET(c, &allowed)) p->cpus[m++] = c;
        p->caller_mask = allowed;
        p->pinned = m == nthreads && pin_self(p->cpus[0]) == 0;
    }
    p->threads = calloc((size_t)nthreads, sizeof *p->threads);
    p->workers = calloc((size_t)nthreads, sizeof *p->workers);
    if (!p->threads || !p->workers) {
        snprintf(err, errlen, "out of memory");
        tpool_destroy(p);
        return NULL;
    }
    for (int i = 1; i < nthreads; i++) {
        p->workers[i].pool = p;
        p->workers[i].index = i;
        pthread_attr_t attr;
        int rc = pthread_attr_init(&attr);
        if (!rc) rc = pthread_attr_setstacksize(&attr, TPOOL_STACK_BYTES);
        if (!rc) rc = pthread_create(&p->threads[i], &attr, worker_main, &p->workers[i]);
        pthread_attr_destroy(&attr);
        if (rc) {
            snprintf(err, errlen, "cannot start thread %d of %d: %s", i, nthreads, strerror(rc));
            tpool_destroy(p);
            return NULL;
        }
        p->nstarted = i;
    }
    return p;
}

void tpool_destroy(ThreadPool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i <= p->nstarted; i++) pthread_join(p->threads[i], NULL);
    if (p->pinned) sched_setaffinity(0, sizeof p->caller_mask, &p->caller_mask);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p->workers);
    free(p->costs);
    free(p);
}

int tpool_threads(const ThreadPool *p) { return p ? p->n : 1; }

int tpool_pinned_cpu(const ThreadPool *p, int i) { return p && p->pinned && i >= 0 && i < p->n ? p->cpus[i] : -1; }

int tpool_default_threads(void) {
    const char *e = getenv("DPOC_THREADS");
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (!*end && v >= 1 && v <= 4096) return (int)v;
    }
    return tpool_cpu_count();
}

static void pool_for(ThreadPool *p, TpoolFn fn, void *arg, int64_t n, int maxk) {
    if (n <= 0) return;
    int k = maxk < n ? maxk : (int)n;
    if (k <= 1) {
        fn(arg, 0, n);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    p->total = n;
    p->k = k;
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    run_chunk(p, 0);
    for (int s = 0; s < SPIN_ITERS && atomic_load(&p->pending) > 0; s++) cpu_relax();
    if (atomic_load(&p->pending) > 0) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_waiting, 1);
        while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done, &p->mu);
        atomic_store(&p->caller_waiting, 0);
        pthread_mutex_unlock(&p->mu);
    }
}

void tpool_for(ThreadPool *p, TpoolFn fn, void *arg, int64_t n) { pool_for(p, fn, arg, n, p->n); }

static int cost_cmp(const void *a, const void *b) {
    uintptr_t x = ((const KernelCost *)a)->fn, y = ((const KernelCost *)b)->fn;
    return x < y ? -1 : x > y;
}

int tpool_set_costs(ThreadPool *p, const DpocKernelFn *fns, const double *unit_cost, int n, double grain) {
    free(p->costs);
    p->costs = NULL;
    p->ncosts = 0;
    if (n <= 0) return 0;
    KernelCost *c = malloc((size_t)n * sizeof *c);
    if (!c) return -1;
    for (int i = 0; i < n; i++) {
        c[i].fn = (uintptr_t)fns[i];
        c[i].unit = grain > 0 ? unit_cost[i] / grain : 1e300;
    }
    qsort(c, (size_t)n, sizeof *c, cost_cmp);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m > 0 && c[m - 1].fn == c[i].fn) {
            if (c[i].unit > c[m - 1].unit) c[m - 1].unit = c[i].unit;
        } else {
            c[m++] = c[i];
        }
    }
    p->costs = c;
    p->ncosts = m;
    return 0;
}

/* How many chunks a call of fn over n units gets. */
static int kernel_chunks(const ThreadPool *p, DpocKernelFn fn, int64_t n) {
    uintptr_t key = (uintptr_t)fn;
    int lo = 0, hi = p->ncosts - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (p->costs[mid].fn == key) {
            double k = (double)n * p->costs[mid].unit;
            return k >= p->n ? p->n : k < 1 ? 1 : (int)k;
        }
        if (p->costs[mid].fn < key)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return p->n;
}

typedef struct KernelJob {
    DpocKernelFn fn;
    uint8_t *const *args;
} KernelJob;

static void kernel_chunk(void *arg, int64_t b, int64_t e) {
    const KernelJob *j = arg;
    j->fn(j->args, b, e);
}

static void services_parallel_for(void *ctx, DpocKernelFn fn, uint8_t *const *args, int64_t n) {
    ThreadPool *p = ctx;
    if (n <= 0) return;
    int k = p->n == 1 ? 1 : kernel_chunks(p, fn, n);
    if (k <= 1) {
        fn(args, 0, n);
        return;
    }
    KernelJob j = {fn, args};
    pool_for(p, kernel_chunk, &j, n, k);
}

DpocServices tpool_services(ThreadPool *p) {
    DpocServices s = {.ctx = p, .parallel_for = services_parallel_for, .dp_size = 1, .tp_size = 1};
    return s;
}

int tpool_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int c = CPU_COUNT(&set);
        if (c > 0) return c;
    }
    return 1;
}
