/* safetensors.c — parsing one safetensors file's header, and dtype conversions.
 *
 * st_parse checks the 8-byte length against the file, parses the JSON with
 * cJSON (length-bounded), then checks each entry: an object with a known
 * dtype string, a shape array of integers in [0, 2^40] (at most ST_MAX_DIMS),
 * two integer data offsets with begin <= end <= the data area's size, and
 * end - begin = numel x dtype size (computed without overflow). The entries
 * are then sorted by begin offset: each must start where the previous one
 * ended (no overlap, no hole) and the last end at the data area's end. A
 * second sort by name finds duplicate names. Numbers must be exact integers
 * below 2^53 (what a double holds). The conversions implement IEEE
 * binary16 and bfloat16 by bit manipulation with round-to-nearest-even.
 */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER (100u << 20) /* bytes of JSON */
#define ST_MAX_DIM ((int64_t)1 << 40)

const char *st_dtype_name(StDType t) { return t == ST_F32 ? "F32" : t == ST_BF16 ? "BF16" : t == ST_F16 ? "F16" : "?"; }
size_t st_dtype_size(StDType t) { return t == ST_F32 ? 4 : (t == ST_BF16 || t == ST_F16) ? 2 : 0; }

int st_dtype_parse(const char *s) {
    static const char *names[] = {"f32", "bf16", "f16"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(names[i]), k;
        if (strlen(s) != n) continue;
        for (k = 0; k < n && (s[k] | 0x20) == names[i][k]; k++) {
        }
        if (k == n) return i;
    }
    if (!strcmp(s, "float32")) return ST_F32;
    if (!strcmp(s, "bfloat16")) return ST_BF16;
    if (!strcmp(s, "float16")) return ST_F16;
    return -1;
}

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t st_f32_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float st_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t st_f32_to_f16(float f) {
    uint32_t u = f2u(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
    if (a < 0x38800000u) {                                   /* below 2^-14: subnormal or zero */
        if (a < 0x33000000u) return (uint16_t)sign;          /* < 2^-25: rounds to 0 (2^-25 ties to even 0) */
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* value = m * 2^(e-150); result units 2^-24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = a - 0x38000000u; /* rebias exponent 127 -> 15 */
    uint32_t q = r >> 13, rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++;
    return (uint16_t)(sign | q);
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return u2f(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        float v = (float)m * 5.9604644775390625e-08f; /* m x 2^-24, exact */
        return sign ? -v : v;
    }
    return u2f(sign | ((e + 112u) << 23) | (m << 13));
}

void st_to_f32(const StTensor *t, float *dst) {
    if (t->dtype == ST_F32) {
        memcpy(dst, t->data, (size_t)t->numel * 4);
        return;
    }
    for (int64_t i = 0; i < t->numel; i++) {
        uint16_t h = (uint16_t)(t->data[2 * i] | (t->data[2 * i + 1] << 8));
        dst[i] = t->dtype == ST_BF16 ? st_bf16_to_f32(h) : st_f16_to_f32(h);
    }
}

void st_tensors_free(StTensor *t, int n) {
    if (!t) return;
    for (int i = 0; i < n; i++) free(t[i].name);
    free(t);
}

/* an exact integer in [0, max] */
static int get_uint(const cJSON *j, double max, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0) || d > max || d != floor(d)) return -1;
    *out = (uint64_t)d;
    return 0;
}

typedef struct Span {
    uint64_t begin, end;
    int idx;
} Span;

static int cmp_span(const void *a, const void *b) {
    const Span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

static int cmp_name(const void *a, const void *b) {
    const StTensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static const char *known_other_dtypes[] = {"F64", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64", "BOOL",
                                           "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"};

static int check_entry(const char *label, const cJSON *e, uint64_t data_size, StTensor *t, Span *sp, char *err,
                       size_t errlen) {
    const char *nm = e->string;
    if (!cJSON_IsObject(e))
        return snprintf(err, errlen, "%s: tensor '%s': expected a JSON object with dtype, shape and data_offsets",
                        label, nm),
               -1;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return snprintf(err, errlen, "%s: tensor '%s': no dtype string", label, nm), -1;
    if (!strcmp(dt->valuestring, "F32"))
        t->dtype = ST_F32;
    else if (!strcmp(dt->valuestring, "BF16"))
        t->dtype = ST_BF16;
    else if (!strcmp(dt->valuestring, "F16"))
        t->dtype = ST_F16;
    else {
        int known = 0;
        for (size_t k = 0; k < sizeof known_other_dtypes / sizeof *known_other_dtypes; k++)
            known |= !strcmp(dt->valuestring, known_other_dtypes[k]);
        return snprintf(err, errlen, "%s: tensor '%s': dtype %.32s is %s (dpoc reads F32, BF16 and F16)", label, nm,
                        dt->valuestring, known ? "not supported" : "not a safetensors dtype"),
               -1;
    }
    if (!cJSON_IsArray(sh)) return snprintf(err, errlen, "%s: tensor '%s': no shape array", label, nm), -1;
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_DIMS)
        return snprintf(err, errlen, "%s: tensor '%s': %d dimensions, at most %d", label, nm, nd, ST_MAX_DIMS), -1;
    t->ndim = nd;
    uint64_t numel = 1;
    int d = 0, overflow = 0;
    for (const cJSON *x = sh->child; x; x = x->next, d++) {
        uint64_t v;
        if (get_uint(x, (double)ST_MAX_DIM, &v))
            return snprintf(err, errlen, "%s: tensor '%s': shape dimension %d is not an integer in [0, 2^40]", label,
                            nm, d),
                   -1;
        t->shape[d] = (int64_t)v;
        if (v && numel > UINT64_MAX / 4 / v) overflow = 1;
        else numel *= v;
    }
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return snprintf(err, errlen, "%s: tensor '%s': data_offsets is not a [begin, end] pair", label, nm), -1;
    uint64_t b, en;
    if (get_uint(off->child, 9007199254740991.0, &b) || get_uint(off->child->next, 9007199254740991.0, &en))
        return snprintf(err, errlen, "%s: tensor '%s': data_offsets are not integers in [0, 2^53)", label, nm), -1;
    if (b > en)
        return snprintf(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu) end before they begin", label, nm,
                        (unsigned long long)b, (unsigned long long)en),
               -1;
    if (en > data_size)
        return snprintf(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu) exceed the data area (%llu bytes)",
                        label, nm, (unsigned long long)b, (unsigned long long)en, (unsigned long long)data_size),
               -1;
    uint64_t want = numel * st_dtype_size(t->dtype);
    if (overflow || want != en - b)
        return snprintf(err, errlen,
                        "%s: tensor '%s': data_offsets [%llu, %llu) hold %llu bytes; its %s shape needs %s%llu", label,
                        nm, (unsigned long long)b, (unsigned long long)en, (unsigned long long)(en - b),
                        st_dtype_name(t->dtype), overflow ? "more than " : "",
                        (unsigned long long)(overflow ? UINT64_MAX / 4 : want)),
               -1;
    t->numel = (int64_t)numel;
    t->nbytes = want;
    sp->begin = b;
    sp->end = en;
    return 0;
}

int st_parse(const char *label, const uint8_t *buf, size_t size, StTensor **out, int *n, char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    if (size < 8) return snprintf(err, errlen, "%s: truncated: %zu bytes, not even the 8-byte header length", label, size), -1;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | buf[i];
    if (hl > size - 8)
        return snprintf(err, errlen, "%s: truncated: the header needs bytes 8..%llu, the file has %zu", label,
                        (unsigned long long)hl + 8, size),
               -1;
    if (hl < 2 || hl > ST_MAX_HEADER)
        return snprintf(err, errlen, "%s: header length %llu is not in [2, %u]", label, (unsigned long long)hl,
                        ST_MAX_HEADER),
               -1;
    if (buf[8] != '{') return snprintf(err, errlen, "%s: header does not start with '{' (not a safetensors file?)", label), -1;
    const char *endp = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)buf + 8, (size_t)hl, &endp, 0);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return snprintf(err, errlen, "%s: header is not a JSON object (error near byte %lld)", label,
                        endp ? (long long)(endp - (const char *)buf) : -1LL),
               -1;
    }
    /* the rest of the header may only be whitespace padding */
    for (const char *p = endp; p && p < (const char *)buf + 8 + hl; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            cJSON_Delete(root);
            return snprintf(err, errlen, "%s: header has bytes after its JSON object", label), -1;
        }
    uint64_t data_size = size - 8 - hl;
    int cap = 0;
    for (const cJSON *e = root->child; e; e = e->next) cap++;
    StTensor *t = calloc((size_t)(cap ? cap : 1), sizeof *t);
    Span *sp = calloc((size_t)(cap ? cap : 1), sizeof *sp);
    StTensor **by = calloc((size_t)(cap ? cap : 1), sizeof *by);
    int k = 0, rc = -1;
    if (!t || !sp || !by) {
        snprintf(err, errlen, "%s: out of memory", label);
        goto out;
    }
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!e->string) continue;
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                snprintf(err, errlen, "%s: __metadata__ is not an object", label);
                goto out;
            }
            for (const cJSON *m = e->child; m; m = m->next)
                if (!cJSON_IsString(m)) {
                    snprintf(err, errlen, "%s: __metadata__ entry '%s' is not a string", label, m->string ? m->string : "");
                    goto out;
                }
            continue;
        }
        if (!e->string[0]) {
            snprintf(err, errlen, "%s: a tensor has an empty name", label);
            goto out;
        }
        if (check_entry(label, e, data_size, &t[k], &sp[k], err, errlen)) goto out;
        if (!(t[k].name = strdup(e->string))) {
            snprintf(err, errlen, "%s: out of memory", label);
            goto out;
        }
        sp[k].idx = k;
        k++;
    }
    qsort(sp, (size_t)k, sizeof *sp, cmp_span);
    uint64_t at = 0;
    for (int i = 0; i < k; i++) {
        const StTensor *x = &t[sp[i].idx];
        if (sp[i].begin < at) {
            snprintf(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu) overlap those of tensor '%s' [%llu, %llu)",
                     label, x->name, (unsigned long long)sp[i].begin, (unsigned long long)sp[i].end,
                     t[sp[i - 1].idx].name, (unsigned long long)sp[i - 1].begin, (unsigned long long)at);
            goto out;
        }
        if (sp[i].begin > at) {
            snprintf(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu) leave bytes %llu..%llu of the data area unused",
                     label, x->name, (unsigned long long)sp[i].begin, (unsigned long long)sp[i].end,
                     (unsigned long long)at, (unsigned long long)sp[i].begin);
            goto out;
        }
        at = sp[i].end;
    }
    if (at != data_size) {
        snprintf(err, errlen, "%s: the tensors cover %llu bytes of a %llu-byte data area", label,
                 (unsigned long long)at, (unsigned long long)data_size);
        goto out;
    }
    for (int i = 0; i < k; i++) {
        t[sp[i].idx].data = buf + 8 + hl + sp[i].begin;
        by[i] = &t[i];
    }
    qsort(by, (size_t)k, sizeof *by, cmp_name);
    for (int i = 1; i < k; i++)
        if (!strcmp(by[i]->name, by[i - 1]->name)) {
            snprintf(err, errlen, "%s: tensor '%s' appears twice in the header", label, by[i]->name);
            goto out;
        }
    rc = 0;
out:
    cJSON_Delete(root);
    free(sp);
    free(by);
    if (rc) {
        for (int i = 0; i < k; i++) free(t[i].name);
        free(t);
        return -1;
    }
    *out = t;
    *n = k;
    return 0;
}
