/* ckpt_dir.c — the checkpoint directory: creating it, the `latest` pointer,
 * durable small files, and pruning.
 *
 * Durability follows one pattern everywhere: write a temporary file in the
 * same directory, fsync it, rename it over the final name (atomic within a
 * directory), then fsync the directory so the rename itself is on disk.
 * `latest` holds one line, the file name of the newest complete checkpoint.
 * Pruning lists the directory once: step files are sorted by their number
 * and the oldest beyond keep_last are removed (never the one `latest`
 * names); temporary files left by a crashed save are removed too. A save
 * prunes before writing as well as after, so saves killed between their
 * rename and their pruning cannot accumulate step files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_internal.h"

int ckpt_pwrite_all(int fd, const void *buf, size_t len, uint64_t offset) {
    const char *p = buf;
    while (len) {
        ssize_t w = pwrite(fd, p, len, (off_t)offset);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        len -= (size_t)w;
        offset += (uint64_t)w;
    }
    return 0;
}

int ckpt_mkdirs(const char *dir, char *err, size_t errlen) {
    char path[4096];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path) {
        snprintf(err, errlen, "'%s': bad directory name", dir);
        return -1;
    }
    memcpy(path, dir, len + 1);
    /* create each prefix ending before a '/', then the whole path */
    for (size_t i = 1; i <= len; i++) {
        if (i < len && path[i] != '/') continue;
        char saved = path[i];
        path[i] = 0;
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "%s: cannot create directory: %s", path, strerror(errno));
            return -1;
        }
        path[i] = saved;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "%s: not a directory", dir);
        return -1;
    }
    return 0;
}

int ckpt_fsync_dir(const char *dir, char *err, size_t errlen) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open directory: %s", dir, strerror(errno));
        return -1;
    }
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0) {
        snprintf(err, errlen, "%s: fsync: %s", dir, strerror(e));
        return -1;
    }
    return 0;
}

int ckpt_write_small(const char *dir, const char *name, const void *data, size_t len, char *err, size_t errlen) {
    char tmp[4096], dst[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= sizeof tmp ||
        (size_t)snprintf(dst, sizeof dst, "%s/%s", dir, name) >= sizeof dst) {
        snprintf(err, errlen, "%s: path too long", dir);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    if (ckpt_pwrite_all(fd, data, len, 0) != 0 || fsync(fd) != 0) {
        snprintf(err, errlen, "%s: write: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    if (close(fd) != 0) {
        snprintf(err, errlen, "%s: close: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, dst) != 0) {
        snprintf(err, errlen, "%s: cannot rename to %s: %s", tmp, dst, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return ckpt_fsync_dir(dir, err, errlen);
}

int ckpt_read_latest(const char *dir, char *name, size_t namelen, char *err, size_t errlen) {
    char path[4096], buf[258];
    if ((size_t)snprintf(path, sizeof path, "%s/latest", dir) >= sizeof path) {
        snprintf(err, errlen, "%s: path too long", dir);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            snprintf(err, errlen, "%s: no checkpoint here (no 'latest' file)", dir);
        else
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    size_t got = 0;
    while (got < sizeof buf) {
        ssize_t r = read(fd, buf + got, sizeof buf - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: read: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got == 0 || got > 256 || buf[got - 1] != '\n') {
        snprintf(err, errlen, "%s: expected one line naming a checkpoint file (at most 255 bytes, ending in a newline)",
                 path);
        return -1;
    }
    size_t n = got - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (ch < 0x20 || ch == 0x7f || ch == '/') {
            snprintf(err, errlen, "%s: byte %zu: a checkpoint file name has no '/', newline or control character", path,
                     i);
            return -1;
        }
    }
    if (n == 0 || buf[0] == '.' || n + 1 > namelen) {
        snprintf(err, errlen, "%s: '%.*s' is not a checkpoint file name", path, (int)n, buf);
        return -1;
    }
    memcpy(name, buf, n);
    name[n] = 0;
    return 0;
}

int ckpt_parse_step_name(const char *name, uint64_t *step) {
    if (strncmp(name, "step-", 5) != 0) return 0;
    const char *p = name + 5;
    uint64_t v = 0;
    int nd = 0;
    for (; *p >= '0' && *p <= '9'; p++, nd++) {
        if (v > (UINT64_MAX - 9) / 10) return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (nd == 0 || strcmp(p, ".ckpt") != 0) return 0;
    *step = v;
    return 1;
}

int ckpt_is_stale_tmp(const char *name) {
    size_t n = strlen(name);
    if (!strcmp(name, ".latest.tmp")) return 1;
    return n > 15 && !strncmp(name, ".step-", 6) &&
           (!strcmp(name + n - 9, ".ckpt.tmp") || !strcmp(name + n - 9, ".mesh.tmp"));
}

typedef struct StepFile {
    uint64_t step;
    char name[256];
} StepFile;

static int cmp_step(const void *a, const void *b) {
    const StepFile *x = a, *y = b;
    return x->step < y->step ? -1 : x->step > y->step;
}

static int remove_in(const char *dir, const char *name, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "%s: cannot remove: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int ckpt_prune(const char *dir, int keep_last, const char *keep, char *err, size_t errlen) {
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: cannot list: %s", dir, strerror(errno));
        return -1;
    }
    StepFile *files = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t step;
        if (ckpt_is_stale_tmp(e->d_name)) {
            if (remove_in(dir, e->d_name, err, errlen) != 0) rc = -1;
            continue;
        }
        if (!ckpt_parse_step_name(e->d_name, &step) || strlen(e->d_name) >= sizeof files[0].name ||
            !strcmp(e->d_name, keep))
            continue;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            StepFile *nf = realloc(files, ncap * sizeof *nf);
            if (!nf) {
                snprintf(err, errlen, "%s: out of memory", dir);
                rc = -1;
                break;
            }
            files = nf;
            cap = ncap;
        }
        files[n].step = step;
        strcpy(files[n].name, e->d_name);
        n++;
    }
    closedir(d);
    /* `keep` is one of the keep_last newest; the others compete for the rest */
    if (rc == 0 && keep_last > 0 && n + 1 > (size_t)keep_last) {
        if (n) qsort(files, n, sizeof *files, cmp_step);
        size_t drop = n + 1 - (size_t)keep_last;
        for (size_t i = 0; i < drop; i++)
            if (remove_in(dir, files[i].name, err, errlen) != 0) rc = -1;
    }
    free(files);
    return rc;
}
