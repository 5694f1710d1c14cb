/* get.c — ldmcache get: one record's header as JSON, its arrays as .npy files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ldmcache.h"
#include "nn/tensor.h" /* ldm_f16_to_f32 */
#include "npy.h"

static json_t *shape3(uint32_t a, uint32_t b, uint32_t c)
{
    return json_pack("[I, I, I]", (json_int_t)a, (json_int_t)b, (json_int_t)c);
}

static json_t *ids_json(const struct ldm_record *r)
{
    json_t *a = json_array();
    for (uint32_t i = 0; a && i < r->hdr.n_ids; i++)
        json_array_append_new(a, json_integer(ldm_record_u32(r->sec.ids, i)));
    return a;
}

static json_t *cond_json(const struct ldm_record_hdr *h)
{
    if (!(h->flags & (LDM_REC_COND_LATENT | LDM_REC_COND_PIXELS)))
        return json_null();
    return json_pack("{s:s, s:o}", "kind", h->flags & LDM_REC_COND_LATENT ? "latent" : "pixels",
                     "shape", shape3(h->cond_c, h->cond_h, h->cond_w));
}

json_t *lc_record_json(const struct ldm_record *r)
{
    const struct ldm_record_hdr *h = &r->hdr;
    json_t *o = json_pack(
        "{s:i, s:I, s:b, s:o, s:b, s:[I, I], s:I, s:I, s:o, s:I, s:[I, I], s:[I, I], s:[I, I], "
        "s:b}",
        "version", (int)r->version, "bytes", (json_int_t)r->len, "crc_ok",
        ldm_record_check_crc(r, "record") == 0, "latent",
        h->latent_c ? shape3(h->latent_c, h->latent_h, h->latent_w) : json_null(), "flip_variants",
        (h->flags & LDM_REC_FLIPPED) != 0, "text", (json_int_t)h->text_len, (json_int_t)h->text_dim,
        "pooled", (json_int_t)h->pooled_dim, "n_ids", (json_int_t)h->n_ids, "input_ids",
        ids_json(r), "bucket", (json_int_t)h->bucket, "original_size", (json_int_t)h->orig_h,
        (json_int_t)h->orig_w, "crop_top_left", (json_int_t)h->crop_top, (json_int_t)h->crop_left,
        "target_size", (json_int_t)h->target_h, (json_int_t)h->target_w, "flip", h->flip);
    if (o)
        json_object_set_new(o, "cond", cond_json(h));
    return o;
}

/* ---- .npy output ---------------------------------------------------------------------- */

/* One section to write: its bytes, element kind and shape. */
struct out_array {
    const char *suffix;
    const void *data;
    int kind; /* 0 fp16, 1 uint32, 2 uint8 */
    int ndim;
    int64_t shape[3];
};

static int write_array(const char *prefix, const struct out_array *a, json_t *files)
{
    struct ldm_array arr;
    int dtype =
        a->kind == 1 ? LDM_DT_F64 : LDM_DT_F32; /* npy.h writes F32/F64: ids as F64, exact */
    int rc = ldm_array_init(&arr, dtype, a->ndim, a->shape);
    if (rc)
        return rc;
    size_t n = ldm_array_count(&arr);
    for (size_t i = 0; i < n; i++) {
        if (a->kind == 1)
            ((double *)arr.data)[i] = ldm_record_u32(a->data, i);
        else if (a->kind == 0)
            ((float *)arr.data)[i] = ldm_f16_to_f32(ldm_record_f16(a->data, i));
        else
            ((float *)arr.data)[i] = ((const unsigned char *)a->data)[i];
    }
    char path[4096];
    snprintf(path, sizeof path, "%s.%s.npy", prefix, a->suffix);
    rc = ldm_npy_write(path, &arr);
    ldm_array_free(&arr);
    if (rc == 0)
        json_array_append_new(files, json_string(path));
    return rc;
}

/* The record's sections, in layout order, as arrays to write. */
static size_t list_arrays(const struct ldm_record *r, struct out_array *out)
{
    const struct ldm_record_hdr *h = &r->hdr;
    const struct ldm_record_sections *s = &r->sec;
    int64_t c = h->latent_c, y = h->latent_h, x = h->latent_w;
    struct out_array all[] = {
        {"latent_mean", s->mean, 0, 3, {c, y, x}},
        {"latent_logvar", s->logvar, 0, 3, {c, y, x}},
        {"flip_latent_mean", s->flip_mean, 0, 3, {c, y, x}},
        {"flip_latent_logvar", s->flip_logvar, 0, 3, {c, y, x}},
        {"text", s->text, 0, 2, {h->text_len, h->text_dim}},
        {"pooled", s->pooled, 0, 1, {h->pooled_dim}},
        {"input_ids", s->ids, 1, 1, {h->n_ids}},
        {h->flags & LDM_REC_COND_PIXELS ? "cond_pixels" : "cond_latent",
         s->cond,
         h->flags & LDM_REC_COND_PIXELS ? 2 : 0,
         3,
         {h->cond_c, h->cond_h, h->cond_w}},
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i].data)
            out[n++] = all[i];
    return n;
}

static int write_arrays(const struct ldm_record *r, const char *prefix, json_t *files)
{
    struct out_array a[8];
    size_t n = list_arrays(r, a);
    for (size_t i = 0; i < n; i++) {
        int rc = write_array(prefix, &a[i], files);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- the command --------------------------------------------------------------------- */

struct get_args {
    const char *dir, *key, *out;
    int meta; /* key names a meta value */
};

static int parse_args(int argc, char **argv, struct get_args *a)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            a->out = argv[++i];
        else if (strcmp(argv[i], "--meta") == 0 && i + 1 < argc && !a->key) {
            a->key = argv[++i];
            a->meta = 1;
        } else if (argv[i][0] == '-')
            return 2;
        else if (!a->dir)
            a->dir = argv[i];
        else if (!a->key)
            a->key = argv[i];
        else
            return 2;
    }
    return a->dir && a->key ? 0 : 2;
}

/* Print the record's JSON (and write its arrays). */
static int show_record(const struct get_args *a, const struct ldm_record *r)
{
    json_t *o = lc_record_json(r);
    if (!o)
        return ldm_fail(LDM_ENOMEM, "JSON");
    json_t *head = json_pack("{s:s}", a->meta ? "meta" : "key", a->key);
    json_object_update(head, o);
    json_decref(o);
    if (a->out) {
        json_t *files = json_array();
        int rc = write_arrays(r, a->out, files);
        json_object_set_new(head, "files", files);
        if (rc) {
            json_decref(head);
            return rc;
        }
    }
    return lc_print_json(head) ? ldm_fail(LDM_ENOMEM, "JSON") : 0;
}

static int get_value(struct ldm_store_txn *t, const struct get_args *a)
{
    const void *v = NULL;
    size_t len = 0;
    struct ldm_record r;
    int rc = ldm_store_get_raw(t, a->meta ? LDM_DB_META : LDM_DB_SAMPLES, a->key, &v, &len);
    if (rc == LDM_ENOTFOUND)
        return ldm_fail(rc, "%s: no %s '%s'", a->dir, a->meta ? "meta value" : "sample", a->key);
    if (rc)
        return rc;
    rc = ldm_record_parse(v, len, a->key, &r);
    if (rc && a->meta) { /* not a record: the value as it is */
        fwrite(v, 1, len, stdout);
        putchar('\n');
        return 0;
    }
    return rc ? rc : show_record(a, &r);
}

int lc_cmd_get(int argc, char **argv)
{
    struct get_args a = {0};
    if (parse_args(argc, argv, &a))
        return 2;
    struct ldm_store *s;
    struct ldm_store_txn *t = NULL;
    int rc = lc_open_readonly(a.dir, &s);
    if (rc == 0)
        rc = ldm_store_read_begin(s, &t);
    if (rc == 0)
        rc = get_value(t, &a);
    ldm_store_read_end(&t);
    ldm_store_close(&s);
    return rc ? lc_report("get", rc) : 0;
}
