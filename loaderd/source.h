/* source.h — shard sources: one iterator over the raw samples of a shard, whatever its kind.
 *
 * Kinds, chosen by ldm_source_open from the URL and the content (not the name):
 *
 *   tar     a WebDataset shard (.tar, .tar.gz, .tar.zst, .tar.xz, .tar.bz2:
 *           compression recognised by its magic bytes), read through
 *           libarchive as a stream: one sample's members in memory at a time.
 *           Members group by key as webdataset does: the key is the path up to
 *           the first dot of the file name (folders kept: "dir/000001.input.jpg"
 *           is key "dir/000001", ext "input.jpg"); the ext is lower-cased;
 *           consecutive members with the same key form one sample (the same
 *           key later again is a new sample). A leading "./" is dropped from
 *           keys. Skipped without a word: entries that are not regular files,
 *           hard links, names with no dot in the file name, hidden files
 *           (file name starting with '.', incl. AppleDouble "._x"), anything
 *           under "__MACOSX/", webdataset's "__name__" metadata entries.
 *   pipe:   "pipe:CMD" runs CMD with /bin/sh -c (stdin /dev/null, stderr
 *           inherited, own process group) and reads its stdout as a tar
 *           stream. When the stream ends, the rest of the output is drained and
 *           a non-zero exit status (or death by a signal) is a shard error,
 *           returned after the samples read so far. Closing early kills the
 *           command's process group.
 *   lines   LAION line shards: a gzip file (several gzip members allowed), or
 *           plain text, one sample a line: caption TAB ignored TAB base64 image
 *           (further fields ignored). A final '\r' is dropped. The key is the
 *           1-based line number in decimal ("17"); members are "txt" (the
 *           caption) and the image named by its magic bytes ("jpg", "png",
 *           "webp"; "jpg" when unknown, so that the decoder reports it).
 *           Base64: standard (+/) or URL-safe (-_) alphabet; padding optional;
 *           blanks (space, \t, \r, \n) inside ignored; anything else, '=' in
 *           the middle, or a length of 4k+1 symbols is LDM_REASON_BAD_BASE64.
 *   folder  a directory: every NAME.jpg|jpeg|png|webp (ext in any case), in
 *           all subfolders, sorted by relative path (strcmp); the key is the
 *           relative path without the extension; members are the image(s)
 *           of that key (ext lower-cased: "jpg", "jpeg", "png", "webp") and,
 *           where they exist, KEY.txt ("txt"), KEY.json ("json") and KEY.E for
 *           each wanted ext E with a dot in it (e.g. "input.jpg"). An image
 *           named KEY.E for such a wanted E is that member, not a sample.
 *           Hidden files and folders are skipped; symlinked folders are not
 *           followed.
 *
 * Samples: ldm_source_next fills a struct ldm_raw_sample. Its `index` counts
 * every sample position of the shard from 0, rejected ones included, so that a
 * resumed lease can skip the first K. A sample with a problem of its own
 * comes back with `reason` != 0 and `detail` saying what and where; the caller
 * counts it per reason and skips it. A problem with the shard itself (cannot
 * open, corrupt or truncated archive or gzip stream, a failing command) ends
 * the iteration with a negative code, `reason` set and the detail naming the
 * shard and the byte offset / member; every sample read completely before it
 * has been delivered first. A sample cut by the damage is dropped, except that
 * one whose members all arrived whole is delivered when the damage is in the
 * next header.
 *
 * Thread use: one source belongs to one thread at a time.
 */
#ifndef LDM_SOURCE_H
#define LDM_SOURCE_H

#include <stddef.h>
#include <stdint.h>

/* Longest key, in bytes (the Sample validator's default). */
#define LDM_SOURCE_MAX_KEY 256

/* Why a sample was rejected, or why a shard ended in error. */
enum ldm_reason {
    LDM_REASON_NONE = 0,
    /* per sample, from a source */
    LDM_REASON_MEMBER_TOO_BIG,   /* a member over max_member_bytes */
    LDM_REASON_SAMPLE_TOO_BIG,   /* members together over max_sample_bytes */
    LDM_REASON_TOO_MANY_MEMBERS, /* over max_members wanted members */
    LDM_REASON_DUPLICATE_EXT,    /* two members with the same ext */
    LDM_REASON_BAD_KEY,          /* key not valid UTF-8, or over LDM_SOURCE_MAX_KEY bytes */
    LDM_REASON_BAD_LINE,         /* a line with fewer than 3 fields, or empty */
    LDM_REASON_LINE_TOO_LONG,    /* a line over max_line_bytes */
    LDM_REASON_BAD_BASE64,       /* the image field is not base64 */
    LDM_REASON_UNREADABLE,       /* a folder member could not be read */
    /* per sample, from sample_fields.h */
    LDM_REASON_NO_IMAGE,   /* no jpg|jpeg|png|webp member */
    LDM_REASON_NO_CAPTION, /* no txt, no usable json field */
    LDM_REASON_BAD_UTF8,   /* caption not valid UTF-8, or holds NUL */
    LDM_REASON_BAD_JSON,   /* json member malformed, or field of a wrong type */
    LDM_REASON_NO_COND,    /* no conditioning member (cond_ext) */
    /* per shard (ldm_source_open / ldm_source_next returned < 0) */
    LDM_REASON_OPEN_FAILED, /* missing, unreadable, unsupported URL */
    LDM_REASON_CORRUPT,     /* damaged archive or gzip stream, not a tar */
    LDM_REASON_TRUNCATED,   /* archive or gzip stream cut short */
    LDM_REASON_PIPE_FAILED, /* pipe: command failed */
    LDM_REASON_COUNT
};

/* A short snake_case name of a reason ("member_too_big"), for counters and
 * logs; "unknown" for codes outside the enum. */
const char *ldm_reason_name(int reason);

/* One member of a sample. */
struct ldm_member {
    const char *ext;           /* lower-case, NUL-terminated ("jpg", "input.jpg") */
    const unsigned char *data; /* len bytes (not NUL-terminated) */
    size_t len;
};

/* One sample. Every pointer is owned by the source and valid until the next
 * ldm_source_next or ldm_source_close on it. */
struct ldm_raw_sample {
    const char *shard; /* the URL the source was opened with */
    const char *key;   /* NUL-terminated, non-empty */
    uint64_t index;    /* position in the shard, from 0 */
    const struct ldm_member *members;
    size_t nmembers;    /* wanted members only, in shard order */
    int reason;         /* LDM_REASON_NONE, or why to reject */
    const char *detail; /* reason != 0: "SHARD: KEY: what" */
};

/* Limits and filters. A zeroed struct (or NULL) gives the defaults. */
struct ldm_source_opts {
    size_t max_member_bytes; /* 0 = 64 MiB; checked before reading */
    size_t max_sample_bytes; /* all wanted members of a sample; 0 = 4 x max_member_bytes */
    size_t max_members;      /* wanted members per sample; 0 = 64 */
    size_t max_line_bytes;   /* line shards; 0 = 4/3 max_member_bytes + 64 KiB */
    const char *const *want; /* NULL-terminated exts to keep ("jpg", "txt",
                                "input.jpg"); NULL = every member. Unwanted
                                members are skipped without reading their
                                data into memory. */
};

enum ldm_source_kind {
    LDM_SOURCE_AUTO = 0, /* by content: a tar header or compressed tar -> tar, else lines */
    LDM_SOURCE_TAR,
    LDM_SOURCE_LINES,
};

struct ldm_source;

/* Open the shard `url` (a path, "pipe:CMD", or a folder). opts may be NULL;
 * the source copies what it needs from it (want is referenced, and must
 * outlive the source). On success *out is the new source (close it with
 * ldm_source_close). Content is not judged here: bytes that are not a shard
 * fail the first ldm_source_next (LDM_REASON_CORRUPT). Returns 0, LDM_EINVAL
 * (empty URL or command), LDM_ENOTFOUND (no such path), LDM_EUNSUPPORTED (a
 * URL scheme: use pipe:), LDM_EIO (open, read, spawn, folder listing failed),
 * LDM_ERANGE (a folder over 10 million images or 64 levels deep) or
 * LDM_ENOMEM; the detail names `url`. */
int ldm_source_open(const char *url, const struct ldm_source_opts *opts, struct ldm_source **out);

/* Open `len` bytes in memory as a shard of `kind`, named `name` in details
 * and samples (tests and fuzz targets). The bytes must outlive the source.
 * Errors as ldm_source_open. */
int ldm_source_open_memory(const void *data, size_t len, enum ldm_source_kind kind,
                           const char *name, const struct ldm_source_opts *opts,
                           struct ldm_source **out);

/* The next sample into *s. Returns 1 (a sample; check s->reason), 0 (the
 * shard ended cleanly) or a negative code: LDM_EFORMAT (corrupt, truncated,
 * not a tar), LDM_EIO (read error, command failed), LDM_ENOMEM; then
 * s->reason is the shard reason, s->detail and ldm_errmsg() the detail, and
 * every later call returns the same. */
int ldm_source_next(struct ldm_source *src, struct ldm_raw_sample *s);

/* Bytes read from the shard's input so far (compressed bytes for a
 * compressed shard; file bytes for a folder). */
uint64_t ldm_source_bytes(const struct ldm_source *src);

/* Close and free; kills a pipe: command still running. NULL is allowed. */
void ldm_source_close(struct ldm_source *src);

#endif
