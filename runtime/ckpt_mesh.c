/* ckpt_mesh.c — sharded checkpoints (ckpt_mesh.h): reading the manifest,
 * opening, verifying and merging (writing is ckpt_mesh_write.c).
 *
 * The manifest is a small JSON object written with cJSON; opening it reads
 * each listed shard file once to compare its size and XXH64 with the
 * manifest, opens it with ckpt_open and checks its header (step, mesh, rank)
 * and that every shard has the same tensor names, dtypes and sharding. The
 * full shape of a tensor is its local shape times mesh_tp on a dimension
 * marked CKPT_SHARD_TP. Reading a full tensor reads each shard's block into
 * a scratch buffer and copies it row by row into place (ckpt_mesh_block).
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_internal.h"
#include "ckpt_mesh.h"

struct CkptMesh {
    char path[4096];
    int dp, tp, n;
    Ckpt **shard; /* by tp rank */
    CkptState st;
    int nt;
    CkptTensor *t; /* full shapes */
};

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

int ckpt_mesh_detect(const char *path, char *out, size_t outlen, char *err, size_t errlen) {
    struct stat sb;
    if (stat(path, &sb)) return snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1;
    if (!S_ISDIR(sb.st_mode)) {
        if (!ends_with(path, ".mesh")) return 0;
        if ((size_t)snprintf(out, outlen, "%s", path) >= outlen) return snprintf(err, errlen, "%s: path too long", path), -1;
        return 1;
    }
    char name[256];
    if (ckpt_read_latest(path, name, sizeof name, err, errlen)) return -1;
    if (!ends_with(name, ".mesh")) return 0;
    if ((size_t)snprintf(out, outlen, "%s/%s", path, name) >= outlen)
        return snprintf(err, errlen, "%s: path too long", path), -1;
    return 1;
}

static char *read_text(const char *path, size_t max, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return snprintf(err, errlen, "%s: %s", path, strerror(errno)), NULL;
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    fclose(f);
    if (!buf) return snprintf(err, errlen, "out of memory"), NULL;
    if (n > max) {
        free(buf);
        return snprintf(err, errlen, "%s: manifest larger than %zu bytes", path, max), NULL;
    }
    buf[n] = 0;
    return buf;
}

int ckpt_hash_file(const char *path, uint64_t *size, uint64_t *h, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1;
    CkptXxh64 s;
    ckpt_xxh64_init(&s, 0);
    unsigned char buf[1 << 16];
    size_t k;
    *size = 0;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
        ckpt_xxh64_update(&s, buf, k);
        *size += k;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) return snprintf(err, errlen, "%s: read error", path), -1;
    *h = ckpt_xxh64_digest(&s);
    return 0;
}

static void dir_of(const char *path, char *dir, size_t cap) {
    const char *sl = strrchr(path, '/');
    if (!sl)
        snprintf(dir, cap, ".");
    else
        snprintf(dir, cap, "%.*s", (int)(sl - path), path);
}

static int jint(const cJSON *o, const char *k, int64_t *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x)) return -1;
    *v = (int64_t)x->valuedouble;
    return 0;
}

/* Checks shard i against shard 0 and fills m->t from shard 0. */
static int check_tables(CkptMesh *m, char *err, size_t errlen) {
    Ckpt *c0 = m->shard[0];
    m->nt = ckpt_ntensors(c0);
    if (!(m->t = calloc((size_t)(m->nt ? m->nt : 1), sizeof *m->t))) return snprintf(err, errlen, "out of memory"), -1;
    for (int i = 0; i < m->nt; i++) {
        const CkptTensor *a = ckpt_tensor(c0, i);
        CkptTensor *f = &m->t[i];
        *f = *a;
        memset(f->shard, 0, sizeof f->shard);
        size_t numel = 1;
        for (int d = 0; d < a->ndim; d++) {
            if (a->shard[d] == CKPT_SHARD_DP)
                return snprintf(err, errlen, "%s: tensor '%s': split over dp; sharded checkpoints split over tp only",
                                ckpt_path(c0), a->name),
                       -1;
            if (a->shard[d] == CKPT_SHARD_TP) f->shape[d] = a->shape[d] * m->tp;
            numel *= (size_t)f->shape[d];
        }
        f->nbytes = numel * ckpt_dtype_size(a->dtype);
        for (int s = 1; s < m->n; s++) {
            Ckpt *c = m->shard[s];
            int j = ckpt_find(c, a->name);
            if (j < 0)
                return snprintf(err, errlen, "%s: tensor '%s' is missing (shard 0 has it)", ckpt_path(c), a->name), -1;
            const CkptTensor *b = ckpt_tensor(c, j);
            if (b->dtype != a->dtype || b->ndim != a->ndim || memcmp(b->shape, a->shape, sizeof a->shape) ||
                memcmp(b->shard, a->shard, sizeof a->shard))
                return snprintf(err, errlen, "%s: tensor '%s': dtype, shape or sharding differs from shard 0 (%s)",
                                ckpt_path(c), a->name, ckpt_path(c0)),
                       -1;
        }
    }
    for (int s = 1; s < m->n; s++)
        if (ckpt_ntensors(m->shard[s]) != m->nt)
            return snprintf(err, errlen, "%s: %d tensors, shard 0 has %d", ckpt_path(m->shard[s]),
                            ckpt_ntensors(m->shard[s]), m->nt),
                   -1;
    return 0;
}

/* Opens every shard (only < 0) or just tp rank `only`. */
static int open_shards(CkptMesh *m, const cJSON *root, int only, char *err, size_t errlen) {
    const char *mp = m->path;
    int64_t step, dp, tp;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *mesh = cJSON_GetObjectItemCaseSensitive(root, "mesh");
    const cJSON *shards = cJSON_GetObjectItemCaseSensitive(root, "shards");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "dpoc-sharded-checkpoint"))
        return snprintf(err, errlen, "%s: not a dpoc sharded checkpoint manifest (\"format\")", mp), -1;
    int64_t ver;
    if (jint(root, "version", &ver) || ver != 1)
        return snprintf(err, errlen, "%s: manifest version must be 1", mp), -1;
    if (jint(root, "step", &step) || step < 0 || !cJSON_IsObject(mesh) || jint(mesh, "dp", &dp) ||
        jint(mesh, "tp", &tp) || dp < 1 || tp < 1 || dp * tp > 65536 || !cJSON_IsArray(shards))
        return snprintf(err, errlen, "%s: manifest needs \"step\", \"mesh\": {\"dp\", \"tp\"} >= 1 and \"shards\"", mp),
               -1;
    m->dp = (int)dp;
    m->tp = (int)tp;
    if (cJSON_GetArraySize(shards) != tp)
        return snprintf(err, errlen, "%s: %d shards listed, the mesh has tp=%d", mp, cJSON_GetArraySize(shards), (int)tp),
               -1;
    m->n = (int)tp;
    if (!(m->shard = calloc((size_t)m->n, sizeof *m->shard))) return snprintf(err, errlen, "out of memory"), -1;
    char dir[4096], fp[8192];
    dir_of(mp, dir, sizeof dir);
    const cJSON *e;
    cJSON_ArrayForEach(e, shards) {
        int64_t rank, tpr, bytes;
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(e, "file");
        const cJSON *hx = cJSON_GetObjectItemCaseSensitive(e, "xxh64");
        if (jint(e, "rank", &rank) || jint(e, "tp_rank", &tpr) || jint(e, "bytes", &bytes) || !cJSON_IsString(file) ||
            !cJSON_IsString(hx) || tpr < 0 || tpr >= tp || rank != tpr || strstr(file->valuestring, "..") ||
            file->valuestring[0] == '/')
            return snprintf(err, errlen, "%s: a shard entry needs \"file\" (relative), \"rank\" = \"tp_rank\" in 0..%d, "
                                         "\"bytes\", \"xxh64\"",
                            mp, (int)tp - 1),
                   -1;
        if (m->shard[tpr]) return snprintf(err, errlen, "%s: tp rank %d listed twice", mp, (int)tpr), -1;
        if (only != -1 && tpr != only) continue;
        snprintf(fp, sizeof fp, "%s/%s", dir, file->valuestring);
        uint64_t size, h;
        if (ckpt_hash_file(fp, &size, &h, err, errlen)) return -1;
        char want[32];
        snprintf(want, sizeof want, "%016" PRIx64, h);
        if (size != (uint64_t)bytes)
            return snprintf(err, errlen, "%s: %" PRIu64 " bytes, the manifest %s says %" PRId64, fp, size, mp, bytes), -1;
        if (strcmp(want, hx->valuestring))
            return snprintf(err, errlen, "%s: file checksum mismatch (manifest %s says %s, computed %s)", fp, mp,
                            hx->valuestring, want),
                   -1;
        if (!(m->shard[tpr] = ckpt_open(fp, err, errlen))) return -1;
        const CkptState *s = ckpt_state(m->shard[tpr]);
        if (s->step != (uint64_t)step || s->mesh_dp != dp || s->mesh_tp != tp || s->rank != tpr)
            return snprintf(err, errlen, "%s: header says step %" PRIu64 ", mesh %d x %d, rank %d; the manifest %s says "
                                         "step %" PRId64 ", mesh %d x %d, rank %d",
                            fp, s->step, s->mesh_dp, s->mesh_tp, s->rank, mp, step, (int)dp, (int)tp, (int)tpr),
                   -1;
    }
    if (only == -2) return 0;
    if (only >= 0) {
        if (only >= m->n || !m->shard[only])
            return snprintf(err, errlen, "%s: no shard for tp rank %d (the mesh has tp=%d)", mp, only, m->n), -1;
        return 0;
    }
    m->st = *ckpt_state(m->shard[0]);
    m->st.mesh_dp = m->st.mesh_tp = 1;
    m->st.rank = 0;
    return check_tables(m, err, errlen);
}

static CkptMesh *mesh_open(const char *path, int only, char *err, size_t errlen) {
    CkptMesh *m = calloc(1, sizeof *m);
    if (!m) return snprintf(err, errlen, "out of memory"), NULL;
    int r = ckpt_mesh_detect(path, m->path, sizeof m->path, err, errlen);
    if (r <= 0) {
        if (r == 0) snprintf(err, errlen, "%s: not a sharded checkpoint (no .mesh manifest)", path);
        free(m);
        return NULL;
    }
    char *text = read_text(m->path, 1 << 20, err, errlen);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    if (text && !root) snprintf(err, errlen, "%s: the manifest is not valid JSON", m->path);
    int rc = root ? open_shards(m, root, only, err, errlen) : -1;
    cJSON_Delete(root);
    free(text);
    if (rc) {
        ckpt_mesh_close(m);
        return NULL;
    }
    return m;
}

CkptMesh *ckpt_mesh_open(const char *path, char *err, size_t errlen) { return mesh_open(path, -1, err, errlen); }

int ckpt_mesh_read_mesh(const char *path, int *dp, int *tp, char *err, size_t errlen) {
    CkptMesh *m = mesh_open(path, -2, err, errlen);
    if (!m) return -1;
    *dp = m->dp;
    *tp = m->tp;
    ckpt_mesh_close(m);
    return 0;
}

Ckpt *ckpt_mesh_open_shard(const char *path, int tp, int tp_rank, char *err, size_t errlen) {
    CkptMesh *m = mesh_open(path, tp_rank, err, errlen);
    if (!m) return NULL;
    Ckpt *c = NULL;
    if (m->tp != tp)
        snprintf(err, errlen, "%s: a tp=%d checkpoint, this mesh has tp=%d", m->path, m->tp, tp);
    else {
        c = m->shard[tp_rank];
        m->shard[tp_rank] = NULL;
    }
    ckpt_mesh_close(m);
    return c;
}

Ckpt *ckpt_mesh_open_merged(const char *path, char *err, size_t errlen) {
    CkptMesh *m = ckpt_mesh_open(path, err, errlen);
    if (!m) return NULL;
    const char *tmp = getenv("TMPDIR");
    char dir[4096], fp[8192];
    snprintf(dir, sizeof dir, "%s/dpoc-merge-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CkptTensor *ts = calloc((size_t)(m->nt ? m->nt : 1), sizeof *ts);
    Ckpt *c = NULL;
    int made = 0, ok = ts != NULL;
    if (!ok) snprintf(err, errlen, "out of memory");
    for (int i = 0; ok && i < m->nt; i++) {
        ts[i] = m->t[i];
        ok = (ts[i].data = malloc(ts[i].nbytes ? ts[i].nbytes : 1)) != NULL;
        if (!ok) snprintf(err, errlen, "out of memory");
        ok = ok && !ckpt_mesh_read_full(m, i, ts[i].data, ts[i].nbytes, err, errlen);
    }
    if (ok && !mkdtemp(dir)) {
        snprintf(err, errlen, "%s: cannot create a temporary directory: %s", dir, strerror(errno));
        ok = 0;
    }
    made = ok;
    if (ok && !ckpt_save(dir, &m->st, ts, m->nt, 0, err, errlen)) {
        snprintf(fp, sizeof fp, "%s/step-%08" PRIu64 ".ckpt", dir, m->st.step);
        c = ckpt_open(fp, err, errlen); /* keeps its descriptor: the file can go */
    }
    if (made) {
        snprintf(fp, sizeof fp, "%s/step-%08" PRIu64 ".ckpt", dir, m->st.step);
        unlink(fp);
        snprintf(fp, sizeof fp, "%s/latest", dir);
        unlink(fp);
        rmdir(dir);
    }
    for (int i = 0; ts && i < m->nt; i++) free(ts[i].data);
    free(ts);
    ckpt_mesh_close(m);
    return c;
}

void ckpt_mesh_close(CkptMesh *m) {
    if (!m) return;
    for (int i = 0; m->shard && i < m->n; i++) ckpt_close(m->shard[i]);
    free(m->shard);
    free(m->t);
    free(m);
}

const char *ckpt_mesh_path(const CkptMesh *m) { return m->path; }
int ckpt_mesh_dp(const CkptMesh *m) { return m->dp; }
int ckpt_mesh_tp(const CkptMesh *m) { return m->tp; }
int ckpt_mesh_nshards(const CkptMesh *m) { return m->n; }
Ckpt *ckpt_mesh_shard(const CkptMesh *m, int i) { return m->shard[i]; }
int ckpt_mesh_shard_tp(const CkptMesh *m, int i) { return i < 0 || i >= m->n ? -1 : i; }
const CkptState *ckpt_mesh_state(const CkptMesh *m) { return &m->st; }
int ckpt_mesh_ntensors(const CkptMesh *m) { return m->nt; }
const CkptTensor *ckpt_mesh_tensor(const CkptMesh *m, int i) { return &m->t[i]; }
int ckpt_mesh_find(const CkptMesh *m, const char *name) {
    for (int i = 0; i < m->nt; i++)
        if (!strcmp(m->t[i].name, name)) return i;
    return -1;
}

void ckpt_mesh_block(int ndim, const int64_t *full, const int64_t *local, const int64_t *off, size_t es, void *fullp,
                     void *localp, int to_full) {
    if (ndim == 0) {
        if (to_full)
            memcpy(fullp, localp, es);
        else
            memcpy(localp, fullp, es);
        return;
    }
    int64_t rows = 1;
    for (int d = 0; d < ndim - 1; d++) rows *= local[d];
    size_t rowb = (size_t)local[ndim - 1] * es;
    int64_t idx[CKPT_MAX_DIMS] = {0};
    for (int64_t r = 0; r < rows; r++) {
        int64_t fo = 0; /* element offset in full */
        for (int d = 0; d < ndim; d++) fo = fo * full[d] + (d < ndim - 1 ? idx[d] + off[d] : off[d]);
        unsigned char *f = (unsigned char *)fullp + (size_t)fo * es;
        unsigned char *l = (unsigned char *)localp + (size_t)r * rowb;
        if (to_full)
            memcpy(f, l, rowb);
        else
            memcpy(l, f, rowb);
        for (int d = ndim - 2; d >= 0; d--) {
            if (++idx[d] < local[d]) break;
            idx[d] = 0;
        }
    }
}

int ckpt_mesh_read_full(CkptMesh *m, int i, void *dst, size_t nbytes, char *err, size_t errlen) {
    const CkptTensor *f = &m->t[i];
    if (nbytes != f->nbytes)
        return snprintf(err, errlen, "%s: tensor '%s' has %zu bytes, %zu requested", m->path, f->name, f->nbytes, nbytes),
               -1;
    Ckpt *c0 = m->shard[0];
    const CkptTensor *l0 = ckpt_tensor(c0, i);
    int split = -1;
    for (int d = 0; d < l0->ndim; d++)
        if (l0->shard[d] == CKPT_SHARD_TP) split = d;
    if (split < 0) return ckpt_read_tensor(c0, i, dst, nbytes, err, errlen);
    void *tmp = malloc(l0->nbytes ? l0->nbytes : 1);
    if (!tmp) return snprintf(err, errlen, "out of memory"), -1;
    for (int s = 0; s < m->n; s++) {
        Ckpt *c = m->shard[s];
        int j = ckpt_find(c, f->name);
        if (ckpt_read_tensor(c, j, tmp, l0->nbytes, err, errlen)) {
            free(tmp);
            return -1;
        }
        int64_t off[CKPT_MAX_DIMS] = {0};
        off[split] = (int64_t)s * l0->shape[split];
        ckpt_mesh_block(l0->ndim, f->shape, l0->shape, off, ckpt_dtype_size(l0->dtype), dst, tmp, 1);
    }
    free(tmp);
    return 0;
}

int ckpt_mesh_verify(CkptMesh *m, void *out_file, char *err, size_t errlen) {
    FILE *out = out_file;
    int bad = 0;
    char e[1024];
    for (int s = 0; s < m->n; s++)
        for (int i = 0; i < ckpt_ntensors(m->shard[s]); i++)
            if (ckpt_verify_tensor(m->shard[s], i, e, sizeof e)) {
                bad++;
                if (out) fprintf(out, "%s\n", e);
            }
    (void)err;
    (void)errlen;
    return bad;
}
