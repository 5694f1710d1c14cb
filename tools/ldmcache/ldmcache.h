/* ldmcache.h — the ldmcache tool's commands and the helpers they share. */
#ifndef LDMCACHE_H
#define LDMCACHE_H

#include <jansson.h>
#include <stdint.h>

#include "record.h"
#include "store.h"

/* Each command gets argv from its own name on; returns 0, 1 (a failure,
 * with the detail recorded, or a verification that found damage) or 2
 * (usage). */
int lc_cmd_stat(int argc, char **argv);
int lc_cmd_get(int argc, char **argv);
int lc_cmd_verify(int argc, char **argv);
int lc_cmd_synth(int argc, char **argv);

/* Open the store in `dir` read-only. Returns ldm_store_open's codes. */
int lc_open_readonly(const char *dir, struct ldm_store **s);

/* Print "ldmcache CMD: DETAIL" for the last failure (rc's text when there
 * is no detail) and return 1. */
int lc_report(const char *cmd, int rc);

/* A parsed record's header as a JSON object (a new reference; NULL when out
 * of memory). */
json_t *lc_record_json(const struct ldm_record *r);

/* Print v (indented) and a newline to stdout, then drop the reference.
 * Returns 0 or 1 (out of memory). */
int lc_print_json(json_t *v);

/* Parse a byte count with an optional K, M, G or T suffix (powers of 1024).
 * Returns 0 or LDM_EINVAL naming `opt`. */
int lc_parse_size(const char *opt, const char *text, uint64_t *out);

#endif
