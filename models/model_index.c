/* model_index.c — read and check a pipeline folder's model_index.json; see model_index.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "json.h"
#include "models/model_index.h"

static int plain_name(const char *s)
{
    return *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* One "name": [library, class] entry; *skip when it is not a part. */
static int read_part(const char *path, const char *dir, const char *key, const json_t *v,
                     struct ldm_model_part *p, int *skip)
{
    *skip = key[0] == '_' || !json_is_array(v) ||
            (json_array_size(v) == 2 && json_is_null(json_array_get(v, 0)) &&
             json_is_null(json_array_get(v, 1)));
    if (*skip)
        return 0;
    const char *lib = json_string_value(json_array_get(v, 0));
    const char *cls = json_string_value(json_array_get(v, 1));
    if (json_array_size(v) != 2 || !lib || !cls || !*lib || !*cls)
        return ldm_fail(LDM_EFORMAT, "%s: part '%s' is not [library, class]", path, key);
    if (!plain_name(key))
        return ldm_fail(LDM_EFORMAT, "%s: part name '%s' is not a plain folder name", path, key);
    char sub[4096];
    struct stat sb;
    snprintf(sub, sizeof sub, "%s/%s", dir, key);
    if (stat(sub, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return ldm_fail(LDM_ENOTFOUND, "%s: part '%s' has no folder %s", path, key, sub);
    p->name = strdup(key);
    p->library = strdup(lib);
    p->cls = strdup(cls);
    return p->name && p->library && p->cls ? 0 : ldm_fail(LDM_ENOMEM, "%s: out of memory", path);
}

static int cmp_part(const void *a, const void *b)
{
    return strcmp(((const struct ldm_model_part *)a)->name, ((const struct ldm_model_part *)b)->name);
}

static int read_index(struct ldm_model_index *mi, const char *path, const char *dir,
                      const json_t *root)
{
    const char *cls = NULL, *ver = NULL, *key;
    int rc = ldm_json_get_str(root, "_class_name", &cls, NULL);
    if (rc == 0)
        rc = ldm_json_get_str(root, "_diffusers_version", &ver, NULL);
    if (rc) {
        char why[512];
        snprintf(why, sizeof why, "%s", ldm_errmsg());
        return ldm_fail(rc, "%s: %s", path, why);
    }
    if (!cls || !*cls)
        return ldm_fail(LDM_EFORMAT, "%s: no \"_class_name\"", path);
    mi->class_name = strdup(cls);
    mi->version = ver ? strdup(ver) : NULL;
    mi->parts = calloc(json_object_size(root) + 1, sizeof *mi->parts);
    if (!mi->class_name || (ver && !mi->version) || !mi->parts)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", path);
    json_t *v;
    json_object_foreach((json_t *)root, key, v) {
        int skip = 0;
        rc = read_part(path, dir, key, v, &mi->parts[mi->nparts], &skip);
        mi->nparts += !skip;
        if (rc)
            return rc;
    }
    if (mi->nparts)
        qsort(mi->parts, mi->nparts, sizeof *mi->parts, cmp_part);
    return 0;
}

int ldm_model_index_load(struct ldm_model_index *mi, const char *dir)
{
    char path[4096];
    json_t *root = NULL;
    memset(mi, 0, sizeof *mi);
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return ldm_fail_errno(LDM_ENOTFOUND, "%s", path);
    int rc = ldm_json_load_object(path, &root);
    if (rc)
        return rc;
    rc = read_index(mi, path, dir, root);
    json_decref(root);
    return rc;
}

void ldm_model_index_free(struct ldm_model_index *mi)
{
    for (size_t i = 0; mi->parts && i < mi->nparts; i++) {
        free(mi->parts[i].name);
        free(mi->parts[i].library);
        free(mi->parts[i].cls);
    }
    free(mi->parts);
    free(mi->class_name);
    free(mi->version);
    memset(mi, 0, sizeof *mi);
}

const struct ldm_model_part *ldm_model_index_part(const struct ldm_model_index *mi,
                                                  const char *name)
{
    struct ldm_model_part key = {.name = (char *)name};
    return mi->nparts ? bsearch(&key, mi->parts, mi->nparts, sizeof key, cmp_part) : NULL;
}

int ldm_model_index_expect(const struct ldm_model_index *mi, const char *name, const char *cls,
                           const struct ldm_model_part **out)
{
    const struct ldm_model_part *p = ldm_model_index_part(mi, name);
    if (out)
        *out = p;
    if (!p)
        return ldm_fail(LDM_ENOTFOUND, "model_index.json: no part '%s'", name);
    if (strcmp(p->cls, cls) != 0)
        return ldm_fail(LDM_EFORMAT, "model_index.json: part '%s' is a %s, expected a %s", name,
                        p->cls, cls);
    return 0;
}
