/* json.c — jansson helpers with the project's error details. */
#include "json.h"
#include "err.h"

#include <stdlib.h>

int ldm_json_parse_object(const char *buf, size_t len, const char *what, json_t **out)
{
    json_error_t e;
    json_t *v = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &e);
    if (!v)
        return ldm_fail(LDM_EFORMAT, "%s: line %d column %d: %s", what, e.line, e.column, e.text);
    if (!json_is_object(v)) {
        json_decref(v);
        return ldm_fail(LDM_EFORMAT, "%s: not a JSON object", what);
    }
    *out = v;
    return 0;
}

int ldm_json_load_object(const char *path, json_t **out)
{
    json_error_t e;
    json_t *v = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!v)
        return ldm_fail(LDM_EFORMAT, "%s: line %d column %d: %s", path, e.line, e.column, e.text);
    if (!json_is_object(v)) {
        json_decref(v);
        return ldm_fail(LDM_EFORMAT, "%s: not a JSON object", path);
    }
    *out = v;
    return 0;
}

char *ldm_json_dump(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII);
}

int ldm_json_get_str(const json_t *obj, const char *key, const char **out, const char *def)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_string(v))
        return ldm_fail(LDM_EFORMAT, "field '%s' must be a string", key);
    *out = json_string_value(v);
    return 0;
}

int ldm_json_get_int(const json_t *obj, const char *key, int64_t *out, int64_t def)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return ldm_fail(LDM_EFORMAT, "field '%s' must be an integer", key);
    *out = (int64_t)json_integer_value(v);
    return 0;
}

int ldm_json_get_real(const json_t *obj, const char *key, double *out, double def)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v))
        return ldm_fail(LDM_EFORMAT, "field '%s' must be a number", key);
    *out = json_number_value(v);
    return 0;
}

int ldm_json_get_bool(const json_t *obj, const char *key, int *out, int def)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v))
        return ldm_fail(LDM_EFORMAT, "field '%s' must be true or false", key);
    *out = json_is_true(v);
    return 0;
}
