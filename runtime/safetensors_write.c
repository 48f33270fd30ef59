/* safetensors_write.c — writing tensors as safetensors, in shards if asked.
 *
 * Tensors are assigned to shards greedily in the given order: a shard is
 * closed when the next tensor would take its data past max_shard bytes (a
 * tensor bigger than that gets a shard of its own). Each file's header is
 * built by hand (names JSON-escaped; offsets as exact integers), with
 * "__metadata__": {"format": "pt"} first, and padded with spaces to a
 * multiple of 8 bytes so the data area is aligned. Data is converted from
 * f32 in chunks while writing. Each file is written to DIR/.NAME.tmp,
 * fsynced and renamed; the index (when sharded) is written last, the same
 * way, and the directory is fsynced.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"

typedef struct Buf {
    char *p;
    size_t len, cap;
    int oom;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np, b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void buf_fmt(Buf *b, const char *fmt, unsigned long long a, unsigned long long c) {
    char tmp[64];
    int n = snprintf(tmp, sizeof tmp, fmt, a, c);
    buf_put(b, tmp, (size_t)n);
}

static void buf_str(Buf *b, const char *s) {
    buf_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            buf_put(b, e, 2);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            buf_put(b, e, 6);
        } else {
            buf_put(b, (const char *)&c, 1);
        }
    }
    buf_put(b, "\"", 1);
}

static uint64_t numel_of(const StWriteTensor *t) {
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (uint64_t)t->shape[d];
    return n;
}

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w, n -= (size_t)w;
    }
    return 0;
}

static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* writes bytes produced by `fill` to dir/name via a temporary file */
static int write_file_atomic(const char *dir, const char *name, const Buf *head, const StWriteTensor *t, int n,
                             StDType dtype, char *err, size_t errlen) {
    char tmp[4096], fin[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= sizeof tmp ||
        (size_t)snprintf(fin, sizeof fin, "%s/%s", dir, name) >= sizeof fin)
        return snprintf(err, errlen, "%s: path too long", dir), -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return snprintf(err, errlen, "%s: cannot create: %m", tmp), -1;
    int bad = write_all(fd, head->p, head->len);
    uint8_t chunk[1 << 16];
    for (int i = 0; i < n && !bad; i++) {
        uint64_t ne = numel_of(&t[i]);
        if (dtype == ST_F32) {
            bad = write_all(fd, t[i].data, (size_t)ne * 4);
            continue;
        }
        for (uint64_t j = 0; j < ne && !bad;) {
            size_t k = 0;
            for (; k < sizeof chunk / 2 && j < ne; k++, j++) {
                uint16_t h = dtype == ST_BF16 ? st_f32_to_bf16(t[i].data[j]) : st_f32_to_f16(t[i].data[j]);
                chunk[2 * k] = (uint8_t)h, chunk[2 * k + 1] = (uint8_t)(h >> 8);
            }
            bad = write_all(fd, chunk, 2 * k);
        }
    }
    if (!bad) bad = fsync(fd);
    if (close(fd)) bad = 1;
    if (bad || rename(tmp, fin)) {
        snprintf(err, errlen, "%s: cannot write: %m", fin);
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int write_shard(const char *dir, const char *name, const StWriteTensor *t, int n, StDType dtype, char *err,
                       size_t errlen) {
    Buf h = {0};
    static const char start[] = "\0\0\0\0\0\0\0\0{\"__metadata__\":{\"format\":\"pt\"}";
    buf_put(&h, start, sizeof start - 1);
    uint64_t off = 0, esz = st_dtype_size(dtype);
    for (int i = 0; i < n; i++) {
        buf_put(&h, ",", 1);
        buf_str(&h, t[i].name);
        buf_put(&h, ":{\"dtype\":\"", 11);
        buf_put(&h, st_dtype_name(dtype), strlen(st_dtype_name(dtype)));
        buf_put(&h, "\",\"shape\":[", 11);
        for (int d = 0; d < t[i].ndim; d++) buf_fmt(&h, d ? ",%llu%.0llu" : "%llu%.0llu", (unsigned long long)t[i].shape[d], 0);
        uint64_t sz = numel_of(&t[i]) * esz;
        buf_fmt(&h, "],\"data_offsets\":[%llu,%llu]}", off, off + sz);
        off += sz;
    }
    buf_put(&h, "}", 1);
    while (!h.oom && h.len % 8) buf_put(&h, " ", 1);
    if (h.oom) {
        free(h.p);
        return snprintf(err, errlen, "out of memory"), -1;
    }
    uint64_t hl = h.len - 8;
    for (int i = 0; i < 8; i++) h.p[i] = (char)(uint8_t)(hl >> (8 * i));
    int rc = write_file_atomic(dir, name, &h, t, n, dtype, err, errlen);
    free(h.p);
    return rc;
}

static int mkdirs(const char *dir, char *err, size_t errlen) {
    char p[4096];
    if ((size_t)snprintf(p, sizeof p, "%s", dir) >= sizeof p) return snprintf(err, errlen, "%s: path too long", dir), -1;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || !*s) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0755) && errno != EEXIST) return snprintf(err, errlen, "%s: cannot create: %m", p), -1;
            *s = c;
            if (!c) break;
        }
    }
    return 0;
}

int st_write(const char *dir, const StWriteTensor *t, int n, StDType dtype, uint64_t max_shard, char *err,
             size_t errlen) {
    if (mkdirs(dir, err, errlen)) return -1;
    uint64_t esz = st_dtype_size(dtype);
    int *first = malloc((size_t)(n + 1) * sizeof *first), ns = 0;
    if (!first) return snprintf(err, errlen, "out of memory"), -1;
    uint64_t cur = 0, total = 0;
    for (int i = 0; i < n; i++) {
        uint64_t sz = numel_of(&t[i]) * esz;
        if (i == 0 || (max_shard && cur > 0 && cur + sz > max_shard)) first[ns++] = i, cur = 0;
        cur += sz;
        total += sz;
    }
    if (n == 0) first[ns++] = 0;
    first[ns] = n;
    int rc = 0;
    Buf idx = {0};
    if (ns > 1) {
        buf_fmt(&idx, "{\n  \"metadata\": {\"total_size\": %llu%.0llu},\n  \"weight_map\": {", total, 0);
    }
    for (int k = 0; k < ns && !rc; k++) {
        char name[96];
        if (ns == 1)
            snprintf(name, sizeof name, "model.safetensors");
        else
            snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k + 1, ns);
        rc = write_shard(dir, name, t + first[k], first[k + 1] - first[k], dtype, err, errlen);
        for (int i = first[k]; ns > 1 && i < first[k + 1]; i++) {
            buf_put(&idx, i ? ",\n    " : "\n    ", i ? 6 : 5);
            buf_str(&idx, t[i].name);
            buf_put(&idx, ": ", 2);
            buf_str(&idx, name);
        }
    }
    free(first);
    if (!rc && ns > 1) {
        buf_put(&idx, "\n  }\n}\n", 7);
        if (idx.oom) {
            rc = -1;
            snprintf(err, errlen, "out of memory");
        } else {
            rc = write_file_atomic(dir, "model.safetensors.index.json", &idx, NULL, 0, ST_F32, err, errlen);
        }
    }
    free(idx.p);
    if (!rc && fsync_dir(dir)) rc = (snprintf(err, errlen, "%s: cannot sync: %m", dir), -1);
    return rc;
}

int st_parse_size(const char *s, uint64_t *out) {
    char *end;
    if (!*s || *s == '-' || *s == '+') return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v >= 0)) return -1;
    static const struct {
        const char *suf;
        double mul;
    } units[] = {{"", 1},         {"B", 1},        {"KB", 1e3},      {"MB", 1e6},  {"GB", 1e9},
                 {"TB", 1e12},    {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0},
                 {"K", 1e3},      {"M", 1e6},      {"G", 1e9}};
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (!strcmp(end, units[i].suf)) {
            double b = v * units[i].mul;
            if (b > 1.8e19) return -1;
            *out = (uint64_t)b;
            return 0;
        }
    return -1;
}
