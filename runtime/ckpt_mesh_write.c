/* ckpt_mesh_write.c — writing sharded checkpoints and pruning them (ckpt_mesh.h).
 *
 * A sharded step N is the directories step-N.tpR (one plain checkpoint
 * each, written by tp rank R with ckpt_save), then the manifest
 * step-N.mesh (sizes and XXH64 of every shard file) and `latest`, written
 * by rank 0 once every shard is on disk. A step without a manifest is
 * incomplete: a save killed before its manifest leaves such shard
 * directories behind, and one killed between `latest` and pruning leaves a
 * manifest too many. Pruning therefore works from the directory listing:
 * it keeps the step being saved and the `keep` newest manifests besides
 * it, and removes every other manifest, every shard directory that belongs
 * to no kept manifest (other than the step being saved, whose shards other
 * ranks may be writing at that moment) and the temporary files of a killed
 * write (a shard directory that also holds files dpoc did not write keeps
 * them and stays). The trainer prunes before writing (keep = keep_last) as well as
 * after the manifest (keep = keep_last - 1), as ckpt_save does for plain
 * checkpoints, so crashes in a row cannot pile steps up: at most keep_last
 * + 1 steps exist at any moment.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt_internal.h"
#include "ckpt_mesh.h"

int ckpt_mesh_save_shard(const char *dir, const CkptState *st, int tp_rank, const CkptTensor *t, int n, char *err,
                         size_t errlen) {
    char sub[4096];
    if ((size_t)snprintf(sub, sizeof sub, "%s/step-%08" PRIu64 ".tp%d", dir, st->step, tp_rank) >= sizeof sub)
        return snprintf(err, errlen, "%s: path too long", dir), -1;
    return ckpt_save(sub, st, t, n, 1, err, errlen);
}

/* "step-<digits>.mesh" (what 1) or "step-<digits>.tp<digits>" (what 2), else 0 */
static int parse_entry(const char *name, uint64_t *step) {
    if (strncmp(name, "step-", 5)) return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(name + 5, &end, 10);
    if (errno || end == name + 5 || name[5] < '0' || name[5] > '9') return 0;
    *step = v;
    if (!strcmp(end, ".mesh")) return 1;
    if (strncmp(end, ".tp", 3) || end[3] < '0' || end[3] > '9') return 0;
    for (const char *p = end + 3; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    return 2;
}

/* dir/name into buf, or an error */
static int join(char *buf, size_t cap, const char *dir, const char *name, char *err, size_t errlen) {
    if ((size_t)snprintf(buf, cap, "%s/%s", dir, name) < cap) return 0;
    return snprintf(err, errlen, "%s: path too long", dir), -1;
}

static int remove_path(const char *path, int is_dir, char *err, size_t errlen) {
    if ((is_dir ? rmdir(path) : unlink(path)) == 0 || errno == ENOENT) return 0;
    return snprintf(err, errlen, "%s: cannot remove: %s", path, strerror(errno)), -1;
}

/* a shard directory: the files a plain save writes there, then the directory */
static int remove_shard_dir(const char *path, char *err, size_t errlen) {
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT) return 0;
        return snprintf(err, errlen, "%s: cannot list: %s", path, strerror(errno)), -1;
    }
    int rc = 0;
    struct dirent *e;
    char p[8192];
    while ((e = readdir(d))) {
        uint64_t s;
        if (strcmp(e->d_name, "latest") && !ckpt_is_stale_tmp(e->d_name) && !ckpt_parse_step_name(e->d_name, &s))
            continue;
        if (join(p, sizeof p, path, e->d_name, err, errlen) || remove_path(p, 0, err, errlen)) rc = -1;
    }
    closedir(d);
    if (rc || rmdir(path) == 0 || errno == ENOENT) return rc;
    if (errno == ENOTEMPTY || errno == EEXIST) return 0; /* it holds files dpoc did not write: left alone */
    return snprintf(err, errlen, "%s: cannot remove: %s", path, strerror(errno)), -1;
}

typedef struct Entry {
    uint64_t step;
    int what; /* 1 manifest, 2 shard directory */
    char name[64];
} Entry;

static int cmp_newest_first(const void *a, const void *b) {
    const Entry *x = a, *y = b;
    return x->step > y->step ? -1 : x->step < y->step;
}

int ckpt_mesh_prune(const char *dir, uint64_t cur, int keep, char *err, size_t errlen) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0; /* nothing saved yet */
        return snprintf(err, errlen, "%s: cannot list: %s", dir, strerror(errno)), -1;
    }
    Entry *ent = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    char p[8192];
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t s;
        int what = parse_entry(e->d_name, &s);
        if (!what) {
            if (ckpt_is_stale_tmp(e->d_name) &&
                (join(p, sizeof p, dir, e->d_name, err, errlen) || remove_path(p, 0, err, errlen)))
                rc = -1;
            continue;
        }
        if (s == cur || strlen(e->d_name) >= sizeof ent[0].name) continue;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 32;
            Entry *ne = realloc(ent, ncap * sizeof *ne);
            if (!ne) {
                rc = -1;
                snprintf(err, errlen, "%s: out of memory", dir);
                break;
            }
            ent = ne;
            cap = ncap;
        }
        ent[n].step = s;
        ent[n].what = what;
        strcpy(ent[n].name, e->d_name);
        n++;
    }
    closedir(d);
    if (rc) return free(ent), -1;
    if (n) qsort(ent, n, sizeof *ent, cmp_newest_first); /* ent is NULL when n is 0 */
    /* entries of one step are adjacent: a step is kept when it has a
     * manifest and fewer than `keep` newer steps with one were kept */
    int manifests = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        int has = 0;
        while (j < n && ent[j].step == ent[i].step) has |= ent[j++].what == 1;
        int kept = has && manifests < keep;
        manifests += has;
        for (; i < j; i++) {
            if (kept) continue;
            if (join(p, sizeof p, dir, ent[i].name, err, errlen) ||
                (ent[i].what == 1 ? remove_path(p, 0, err, errlen) : remove_shard_dir(p, err, errlen)) != 0)
                rc = -1;
        }
    }
    free(ent);
    if (rc == 0 && n) rc = ckpt_fsync_dir(dir, err, errlen);
    return rc;
}

int ckpt_mesh_save_manifest(const char *dir, uint64_t step, int dp, int tp, int keep_last, char *err, size_t errlen) {
    cJSON *root = cJSON_CreateObject(), *mesh = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    char *text = NULL;
    int rc = -1;
    if (!root || !mesh || !arr) {
        cJSON_Delete(root);
        cJSON_Delete(mesh);
        cJSON_Delete(arr);
        return snprintf(err, errlen, "out of memory"), -1;
    }
    cJSON_AddStringToObject(root, "format", "dpoc-sharded-checkpoint");
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddNumberToObject(root, "step", (double)step);
    cJSON_AddNumberToObject(mesh, "dp", dp);
    cJSON_AddNumberToObject(mesh, "tp", tp);
    cJSON_AddItemToObject(root, "mesh", mesh);
    cJSON_AddItemToObject(root, "shards", arr);
    for (int r = 0; r < tp; r++) {
        char rel[256], fp[8192], hx[32];
        snprintf(rel, sizeof rel, "step-%08" PRIu64 ".tp%d/step-%08" PRIu64 ".ckpt", step, r, step);
        snprintf(fp, sizeof fp, "%s/%s", dir, rel);
        uint64_t size, h;
        if (ckpt_hash_file(fp, &size, &h, err, errlen)) goto out;
        snprintf(hx, sizeof hx, "%016" PRIx64, h);
        cJSON *e = cJSON_CreateObject();
        if (!e) goto oom;
        cJSON_AddItemToArray(arr, e);
        cJSON_AddStringToObject(e, "file", rel);
        cJSON_AddNumberToObject(e, "rank", r);
        cJSON_AddNumberToObject(e, "tp_rank", r);
        cJSON_AddNumberToObject(e, "bytes", (double)size);
        cJSON_AddStringToObject(e, "xxh64", hx);
    }
    if (!(text = cJSON_Print(root))) goto oom;
    char name[64], latest[80];
    snprintf(name, sizeof name, "step-%08" PRIu64 ".mesh", step);
    snprintf(latest, sizeof latest, "%s\n", name);
    size_t len = strlen(text);
    text[len++] = '\n'; /* replaces the NUL; len is written, not strlen */
    if (ckpt_write_small(dir, name, text, len, err, errlen) ||
        ckpt_write_small(dir, "latest", latest, strlen(latest), err, errlen))
        goto out;
    if (keep_last > 0 && ckpt_mesh_prune(dir, step, keep_last - 1, err, errlen)) goto out;
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    free(text);
    cJSON_Delete(root);
    return rc;
}
