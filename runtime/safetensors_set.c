/* safetensors_set.c — opening a safetensors checkpoint: one file or shards.
 *
 * A path that is a directory is read through its
 * model.safetensors.index.json when there is one (its "weight_map" object
 * maps each tensor name to a shard file in the same directory; the distinct
 * shards are opened in order of first mention, and each name must be found
 * in the shard it is mapped to), else its model.safetensors. Each file is
 * mapped read-only (mmap) and parsed by st_parse; its tensors join one list.
 * A name found in two shards is an error. Error messages use the file's
 * base name and the tensor's name.
 */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"

typedef struct Shard {
    char *path;
    uint8_t *map;
    size_t size;
    StTensor *t;
    int n;
} Shard;

struct StSet {
    Shard *shards;
    int nshards;
    StTensor **all;
    int nall;
};

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int map_shard(Shard *sh, char *err, size_t errlen) {
    const char *label = base_name(sh->path);
    int fd = open(sh->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return snprintf(err, errlen, "%s: cannot open: %m", sh->path), -1;
    struct stat stt;
    if (fstat(fd, &stt) || !S_ISREG(stt.st_mode)) {
        close(fd);
        return snprintf(err, errlen, "%s: not a regular file", sh->path), -1;
    }
    sh->size = (size_t)stt.st_size;
    if (sh->size == 0) {
        close(fd);
        return snprintf(err, errlen, "%s: truncated: the file is empty", label), -1;
    }
    void *m = mmap(NULL, sh->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return snprintf(err, errlen, "%s: cannot map: %m", sh->path), -1;
    sh->map = m;
    return st_parse(label, sh->map, sh->size, &sh->t, &sh->n, err, errlen);
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *read_small(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return snprintf(err, errlen, "%s: cannot open: %m", path), NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 65536;
            if (cap > (256u << 20)) {
                free(buf);
                fclose(f);
                return snprintf(err, errlen, "%s: larger than 256 MB", path), NULL;
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return snprintf(err, errlen, "out of memory"), NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + len, 1, 4096, f);
        len += r;
        if (r < 4096) break;
    }
    fclose(f);
    buf[len] = 0;
    return buf;
}

static int add_shard(StSet *s, const char *path, char *err, size_t errlen) {
    for (int i = 0; i < s->nshards; i++)
        if (!strcmp(s->shards[i].path, path)) return i;
    Shard *ns = realloc(s->shards, (size_t)(s->nshards + 1) * sizeof *ns);
    if (!ns) return snprintf(err, errlen, "out of memory"), -1;
    s->shards = ns;
    Shard *sh = &s->shards[s->nshards];
    memset(sh, 0, sizeof *sh);
    if (!(sh->path = strdup(path))) return snprintf(err, errlen, "out of memory"), -1;
    s->nshards++;
    if (map_shard(sh, err, errlen)) return -1;
    return s->nshards - 1;
}

static int find_in_shard(const Shard *sh, const char *name) {
    for (int i = 0; i < sh->n; i++)
        if (!strcmp(sh->t[i].name, name)) return i;
    return -1;
}

static int open_index(StSet *s, const char *dir, const char *ipath, char *err, size_t errlen) {
    char *text = read_small(ipath, err, errlen);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const char *label = base_name(ipath);
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    int rc = -1;
    if (!cJSON_IsObject(wm)) {
        snprintf(err, errlen, "%s: %s", label, root ? "no \"weight_map\" object" : "not valid JSON");
        goto out;
    }
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !e->valuestring[0] || strchr(e->valuestring, '/')) {
            snprintf(err, errlen, "%s: tensor '%s': weight_map entry is not a file name in this directory", label,
                     e->string);
            goto out;
        }
        char *p = join(dir, e->valuestring);
        if (!p) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        int k = add_shard(s, p, err, errlen);
        free(p);
        if (k < 0) goto out;
        if (find_in_shard(&s->shards[k], e->string) < 0) {
            snprintf(err, errlen, "%s: tensor '%s': mapped to %s, which does not hold it", label, e->string,
                     e->valuestring);
            goto out;
        }
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

static int cmp_ptr_name(const void *a, const void *b) {
    const StTensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

StSet *st_open(const char *path, char *err, size_t errlen) {
    StSet *s = calloc(1, sizeof *s);
    if (!s) return snprintf(err, errlen, "out of memory"), NULL;
    struct stat stt;
    if (stat(path, &stt)) {
        snprintf(err, errlen, "%s: %m", path);
        goto fail;
    }
    if (S_ISDIR(stt.st_mode)) {
        char *ip = join(path, "model.safetensors.index.json");
        if (!ip) goto oom;
        int bad;
        if (access(ip, F_OK) == 0) {
            bad = open_index(s, path, ip, err, errlen);
        } else {
            char *one = join(path, "model.safetensors");
            if (!one) {
                free(ip);
                goto oom;
            }
            if (access(one, F_OK))
                bad = (snprintf(err, errlen, "%s: no model.safetensors.index.json and no model.safetensors", path), -1);
            else
                bad = add_shard(s, one, err, errlen) < 0;
            free(one);
        }
        free(ip);
        if (bad) goto fail;
    } else if (add_shard(s, path, err, errlen) < 0) {
        goto fail;
    }
    for (int i = 0; i < s->nshards; i++) s->nall += s->shards[i].n;
    s->all = calloc((size_t)(s->nall ? s->nall : 1), sizeof *s->all);
    if (!s->all) goto oom;
    int k = 0;
    for (int i = 0; i < s->nshards; i++)
        for (int j = 0; j < s->shards[i].n; j++) {
            s->shards[i].t[j].shard = i;
            s->all[k++] = &s->shards[i].t[j];
        }
    StTensor **by = malloc((size_t)(k ? k : 1) * sizeof *by);
    if (!by) goto oom;
    memcpy(by, s->all, (size_t)k * sizeof *by);
    qsort(by, (size_t)k, sizeof *by, cmp_ptr_name);
    for (int i = 1; i < k; i++)
        if (!strcmp(by[i]->name, by[i - 1]->name)) {
            snprintf(err, errlen, "%s: tensor '%s' is in two shards (%s and %s)", path, by[i]->name,
                     base_name(s->shards[by[i - 1]->shard].path), base_name(s->shards[by[i]->shard].path));
            free(by);
            goto fail;
        }
    free(by);
    return s;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    st_close(s);
    return NULL;
}

void st_close(StSet *s) {
    if (!s) return;
    for (int i = 0; i < s->nshards; i++) {
        st_tensors_free(s->shards[i].t, s->shards[i].n);
        if (s->shards[i].map) munmap(s->shards[i].map, s->shards[i].size);
        free(s->shards[i].path);
    }
    free(s->shards);
    free(s->all);
    free(s);
}

int st_count(const StSet *s) { return s->nall; }
const StTensor *st_tensor(const StSet *s, int i) { return s->all[i]; }
const char *st_shard_path(const StSet *s, int shard) { return s->shards[shard].path; }

int st_find(const StSet *s, const char *name) {
    for (int i = 0; i < s->nall; i++)
        if (!strcmp(s->all[i]->name, name)) return i;
    return -1;
}
