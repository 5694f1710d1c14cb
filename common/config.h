/* config.h — typed configuration: an INI file section plus --key=value overrides.
 *
 * A daemon describes its keys with a table of struct ldm_cfg_key; each key
 * writes one field of the daemon's config struct (at `offset`). Loading:
 *   1. every key gets its default (`def`, parsed like a file value; NULL = none);
 *   2. the INI file (if any): keys of section [common] then of the daemon's own
 *      section, in file order; other sections are ignored (one file serves
 *      every daemon of a node);
 *   3. command-line overrides `--key=value` (or `--key value`; a bool key given
 *      as `--key` alone means true), in order; later wins.
 * Afterwards every `required` key must have been set by 1-3.
 *
 * Errors stop start-up: an unknown key, a bad value, a duplicate key in one
 * section, a malformed line or a missing required key returns LDM_ECONFIG
 * with a detail naming the key, the file and the line, e.g.
 *   /etc/ldmpipe/ldmpipe.conf:12: [loaderd] threads: "four" is not an integer
 *   command line: --threads: "x" is not an integer
 *   [loaderd] shards: required key not set (in /etc/ldmpipe/ldmpipe.conf or --shards=...)
 *
 * INI syntax: `[section]` headers; `key = value` lines; '#' or ';' at the start of
 * a line (after blanks) begins a comment, and ' #' / ' ;' after a value too;
 * values may be "double-quoted" (then \" \\ \n \t escapes work and # is literal);
 * blanks around keys and values are trimmed; a line ending in '\' continues on
 * the next line (for long path lists). Keys are [A-Za-z0-9_.-]+.
 *
 * Details of that syntax: a comment after a value needs a blank before its
 * '#' or ';' (`color=#fff` is the value "#fff"; `key = # x` is empty); a
 * comment may follow a quoted value or a section header; a continued line
 * loses the '\' and its next line's leading blanks (blanks before the '\'
 * stay), and a comment line never continues; keys before the first section
 * header, a NUL byte, an unknown escape in quotes, and text after a closing
 * quote are errors. A section may appear several times; a key twice in the
 * same section (across its headers) is a duplicate. Section names use the
 * key characters; blanks inside the brackets are trimmed.
 *
 * Value syntax, beyond the list below: INT has no octal (010 is ten); SIZE
 * and DURATION take a decimal point where the result is a whole number of
 * bytes or milliseconds (1.5G, 0.5K, 1.5s; not 1.5 bytes), up to 18 decimal
 * places, no sign and no blank before the unit; SIZE units are
 * case-insensitive (64k, 1gib), DURATION units are lower case; a PATHLIST
 * text made only of separators is an error (write "" for an empty list), and
 * its items are kept as written ({..} ranges are not expanded here).
 * Allocation failure returns LDM_ENOMEM.
 *
 * Fields: every struct must start zeroed (or hold what an earlier load put
 * there): setting a STRING, ENDPOINT or PATHLIST field frees its old value.
 */
#ifndef LDM_CONFIG_H
#define LDM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

enum ldm_cfg_type {
    LDM_CFG_INT,      /* int64_t; decimal or 0x hex, optional sign */
    LDM_CFG_FLOAT,    /* double; finite */
    LDM_CFG_BOOL,     /* int (0/1); true/false, yes/no, on/off, 1/0 */
    LDM_CFG_STRING,   /* char * (malloc'd, freed by ldm_cfg_free) */
    LDM_CFG_SIZE,     /* uint64_t bytes; 123, 64K, 512M, 2G, 1T (powers of 1024), optional B/iB */
    LDM_CFG_DURATION, /* int64_t milliseconds; 250ms, 30s, 5m, 2h; a bare number = seconds */
    LDM_CFG_ENDPOINT, /* char *; ipc://PATH, tcp://HOST:PORT (PORT 1-65535 or *), inproc://NAME */
    LDM_CFG_PATHLIST, /* struct ldm_strlist; items separated by blanks or commas outside {} */
};

/* A list of strings (path list values). */
struct ldm_strlist {
    char **v; /* n strings, each malloc'd */
    size_t n;
};

struct ldm_cfg_key {
    const char *name;
    enum ldm_cfg_type type;
    size_t offset;    /* of the field in the config struct */
    const char *def;  /* default, as text; NULL = unset */
    int required;     /* must be set by default, file or command line */
    double min, max;  /* for INT, FLOAT, SIZE, DURATION (ms): bounds, inclusive; both 0 = none */
    const char *help; /* one line, for --help */
};

/* One table applied to one struct. A daemon passes several (common keys of
 * the daemon skeleton + its own); a key name must be unique across them. */
struct ldm_cfg_part {
    const struct ldm_cfg_key *keys; /* terminated by an entry with name == NULL */
    void *base;                     /* the struct the offsets point into */
};

/* Load as described above. `file` may be NULL (no file). argv holds only the
 * overrides (no program name); any argument that is not --key[=value] is an
 * error. In the form `--key value` the value may not begin with "--" (write
 * --key=--x). A `section` of NULL applies [common] only. Returns 0 or
 * LDM_ECONFIG (detail in ldm_errmsg()); an unreadable file is LDM_ECONFIG too.
 * On failure the fields may be partly set; ldm_cfg_free still releases them. */
int ldm_cfg_load(const struct ldm_cfg_part *parts, size_t nparts, const char *section,
                 const char *file, int argc, char **argv);

/* As ldm_cfg_load, with the file's text given: `len` bytes at `text` (need
 * not end in NUL), named `name` in messages. `text` NULL = no file. */
int ldm_cfg_load_buffer(const struct ldm_cfg_part *parts, size_t nparts, const char *section,
                        const char *name, const char *text, size_t len, int argc, char **argv);

/* Parse one value of a type into `out` (the field); used by load and tests.
 * Returns 0 or LDM_ECONFIG with a detail saying what is wrong with the text
 * (without the key/file/line prefix). Bounds (min/max) are checked. On
 * success a STRING/ENDPOINT/PATHLIST field's old value is freed; on failure
 * the field is left as it was. */
int ldm_cfg_parse_value(const struct ldm_cfg_key *key, const char *text, void *out);

/* Free the strings and lists the tables' fields own, and zero them. */
void ldm_cfg_free(const struct ldm_cfg_part *parts, size_t nparts);

/* Print "  --name=TYPE  help (default: def)" lines for --help. */
void ldm_cfg_usage(const struct ldm_cfg_part *parts, size_t nparts, void *stream /* FILE* */);

/* Free the strings and the array, and zero the list. NULL is allowed. */
void ldm_strlist_free(struct ldm_strlist *l);

#endif
