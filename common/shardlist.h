/* shardlist.h — shard specifications into an ordered list of shard URLs.
 *
 * A specification is one of, after its braces are expanded:
 *
 *   data/pairs-{000000..000099}.tar     brace range; zero padding is kept as
 *                                       Python's braceexpand does: when either
 *                                       bound has a leading zero, every number
 *                                       is padded to the longer bound's width
 *   data/{train,extra}-{0..9..3}.tar    alternatives, several braces, a step;
 *                                       braces nest; `\x` makes x literal; a
 *                                       brace holding neither a top-level comma
 *                                       nor ".." stays as written ("{x}")
 *   data/s-*.tar, shard-??.tar.gz, [ab]* globs (glob(3)), matches sorted by
 *                                       strcmp; a glob matching nothing is an
 *                                       error
 *   a.tar::b-{0..3}.tar                 several patterns in one spec, split at
 *                                       "::" (as webdataset does)
 *   pipe:curl -s http://h/s-{0..9}.tar  a command: only braces are expanded,
 *                                       each result kept verbatim (no glob, no
 *                                       "::" split, no list)
 *   @FILE, NAME.list, NAME.filelist     a file list: one specification a line
 *                                       (blank lines and lines starting with
 *                                       '#' skipped, surrounding blanks and a
 *                                       final '\r' trimmed); an entry may be a
 *                                       file list itself (LAION layout:
 *                                       train.filelist.list names .filelist
 *                                       files naming part-NNNNN.gz), nested up
 *                                       to LDM_SHARDLIST_DEPTH deep
 *   s3://b/x.tar, http://h/x.tar        kept verbatim (a source may refuse it)
 *
 * A relative path inside a file list resolves against the list file's folder;
 * when nothing exists there but the path exists as written (relative to the
 * working folder, as in the LAION seed's `./data/filelist/x.filelist`), the
 * path as written is used.
 *
 * Bad braces (unbalanced, a reversed range `{9..1}`, a range that is not
 * decimal digits `{a..z}` `{-1..3}` `{1..x}`, a zero step, a bound beyond 19
 * digits) are LDM_EFORMAT with a detail naming the pattern. A list longer
 * than the cap is LDM_ERANGE naming the pattern.
 */
#ifndef LDM_SHARDLIST_H
#define LDM_SHARDLIST_H

#include <stddef.h>

/* Default cap on the number of URLs one expansion may produce. */
#define LDM_SHARDLIST_MAX 10000000u
/* How deep file lists may name file lists. */
#define LDM_SHARDLIST_DEPTH 8

/* An ordered list of URLs. Start zeroed; free with ldm_shardlist_free. */
struct ldm_shardlist {
    char **v; /* n strings, each malloc'd */
    size_t n;
    size_t cap; /* allocated slots of v */
};

/* Expand `nspecs` specifications, in order, appending their URLs to *out
 * (zeroed or holding an earlier result). `max` caps out->n (0 means
 * LDM_SHARDLIST_MAX). Duplicates are kept. On failure *out is freed and
 * zeroed. Returns 0, LDM_EINVAL (an empty specification), LDM_EFORMAT (bad
 * braces; a line of a file list that does not expand, prefixed "LIST:LINE: "),
 * LDM_ENOTFOUND (a glob matching nothing, a missing file list), LDM_ERANGE
 * (over the cap; file lists nested too deep), LDM_EIO or LDM_ENOMEM. */
int ldm_shardlist_expand(const char *const *specs, size_t nspecs, size_t max,
                         struct ldm_shardlist *out);

/* Brace expansion alone (no glob, list or "::" handling), appending the
 * results of `pattern` to *out. Errors as above (LDM_EFORMAT, LDM_ERANGE,
 * LDM_ENOMEM); on failure *out keeps what it held before the call. */
int ldm_brace_expand(const char *pattern, size_t max, struct ldm_shardlist *out);

/* The shards of node `node_index` out of `node_count`: shard i goes to node
 * i % node_count. *out (zeroed) receives copies; the caller frees it.
 * Returns 0, LDM_EINVAL (node_count 0, node_index >= node_count) or
 * LDM_ENOMEM. */
int ldm_shardlist_for_node(const struct ldm_shardlist *all, size_t node_index, size_t node_count,
                           struct ldm_shardlist *out);

/* Append a copy of `url`. Returns 0 or LDM_ENOMEM. */
int ldm_shardlist_push(struct ldm_shardlist *l, const char *url);

/* Free the strings and the array, and zero *l. NULL is allowed. */
void ldm_shardlist_free(struct ldm_shardlist *l);

#endif
