/* json.h — helpers over jansson (Debian libjansson-dev).
 *
 * jansson is the project's JSON library: json_t values, reference counted
 * (json_decref). These helpers add the project's error discipline.
 */
#ifndef LDM_JSON_H
#define LDM_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Parse `len` bytes as one JSON object. On success *out is a new reference.
 * Returns 0 or LDM_EFORMAT with a detail giving `what`, the line, the column
 * and jansson's text ("request: line 1 column 7: ..."), or saying that the
 * value is not an object. */
int ldm_json_parse_object(const char *buf, size_t len, const char *what, json_t **out);

/* Parse a file holding one JSON object (e.g. a model's config.json). */
int ldm_json_load_object(const char *path, json_t **out);

/* Compact text of `v` (malloc'd; the caller frees), or NULL when out of memory. */
char *ldm_json_dump(const json_t *v);

/* Typed field access with a default when the key is missing. When the key
 * is present with the wrong type they return LDM_EFORMAT naming the key. */
int ldm_json_get_str(const json_t *obj, const char *key, const char **out, const char *def);
int ldm_json_get_int(const json_t *obj, const char *key, int64_t *out, int64_t def);
int ldm_json_get_real(const json_t *obj, const char *key, double *out, double def);
int ldm_json_get_bool(const json_t *obj, const char *key, int *out, int def);

#endif
