/* fuzz_ini.c — libFuzzer target: the config loader over arbitrary INI text and overrides.
 *
 * Input: the file's text; if it holds a line "%%", the lines after it are the
 * command-line overrides, one per line (a final newline adds none). The table has a key of every type, in
 * two parts; the daemon's section is [d]. The first line of the input is also
 * given to each value parser directly. Every failure must carry a detail.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"

struct all {
    int64_t i, bounded, d;
    double f;
    int b;
    char *s, *e;
    uint64_t z;
    struct ldm_strlist l;
};

struct base {
    char *run_dir;
};

#define OFF(f) offsetof(struct all, f)

static const struct ldm_cfg_key keys[] = {
    {"int", LDM_CFG_INT, OFF(i), "0", 0, 0, 0, NULL},
    {"bounded", LDM_CFG_INT, OFF(bounded), "1", 0, -5, 100, NULL},
    {"float", LDM_CFG_FLOAT, OFF(f), "0.5", 0, -1, 1, NULL},
    {"bool", LDM_CFG_BOOL, OFF(b), "off", 0, 0, 0, NULL},
    {"string", LDM_CFG_STRING, OFF(s), "x", 0, 0, 0, NULL},
    {"size", LDM_CFG_SIZE, OFF(z), "64K", 0, 0, 0, NULL},
    {"duration", LDM_CFG_DURATION, OFF(d), "1.5s", 0, 0, 86400000, NULL},
    {"endpoint", LDM_CFG_ENDPOINT, OFF(e), NULL, 0, 0, 0, NULL},
    {"paths", LDM_CFG_PATHLIST, OFF(l), "a,{b,c}", 0, 0, 0, NULL},
    {NULL},
};

static const struct ldm_cfg_key base_keys[] = {
    {"run_dir", LDM_CFG_STRING, offsetof(struct base, run_dir), NULL, 0, 0, 0, NULL},
    {NULL},
};

#define MAX_ARGS 16

/* Split the text after the "%%" line into argv (in `copy`, which the caller frees). */
static int split_args(const char *p, size_t n, char **copy, char **argv)
{
    int argc = 0;
    *copy = malloc(n + 1);
    if (!*copy)
        abort();
    memcpy(*copy, p, n);
    (*copy)[n] = '\0';
    for (char *s = *copy, *nl; s && s < *copy + n && argc < MAX_ARGS; s = nl ? nl + 1 : NULL) {
        nl = memchr(s, '\n', (size_t)(*copy + n - s));
        if (nl)
            *nl = '\0';
        argv[argc++] = s;
    }
    return argc;
}

static void check_failure(int rc)
{
    if (rc == 0)
        return;
    if ((rc != LDM_ECONFIG && rc != LDM_ENOMEM) || ldm_errmsg()[0] == '\0')
        abort();
}

/* Each value parser on the first line of the input. */
static void parse_each_type(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t n = nl ? (size_t)(nl - data) : size;
    char *text = strndup((const char *)data, n);
    if (!text)
        abort();
    for (const struct ldm_cfg_key *k = keys; k->name; k++) {
        struct all a = {0};
        ldm_err_clear();
        check_failure(ldm_cfg_parse_value(k, text, (char *)&a + k->offset));
        const struct ldm_cfg_part part = {keys, &a};
        ldm_cfg_free(&part, 1);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data, *mark = memmem(data, size, "\n%%\n", 4);
    size_t flen = mark ? (size_t)(mark - text) : size;
    char *copy = NULL, *argv[MAX_ARGS];
    int argc = mark ? split_args(mark + 4, size - flen - 4, &copy, argv) : 0;
    struct all a = {0};
    struct base b = {0};
    const struct ldm_cfg_part parts[] = {{base_keys, &b}, {keys, &a}};

    ldm_err_clear();
    check_failure(ldm_cfg_load_buffer(parts, 2, "d", "fuzz.ini", text, flen, argc, argv));
    for (size_t i = 0; i < a.l.n; i++)
        if (a.l.v[i][0] == '\0')
            abort(); /* a path list never holds an empty item */
    ldm_cfg_free(parts, 2);
    free(copy);
    parse_each_type(data, size);
    return 0;
}
