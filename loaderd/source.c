/* source.c — shard sources: open by URL and content, the sample being built, shard failures. */
#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "err.h"
#include "source_int.h"
#include "utf8.h"

#define DEFAULT_MAX_MEMBER (64u << 20)
#define DEFAULT_MAX_MEMBERS 64u
#define FIRST_CHUNK (1u << 20) /* a member's buffer starts at most this big, then grows with its data */
#define KEEP_BUFFER (16u << 20) /* buffers above this are freed when the next sample starts */

static const char *const reason_names[LDM_REASON_COUNT] = {
    [LDM_REASON_NONE] = "none",
    [LDM_REASON_MEMBER_TOO_BIG] = "member_too_big",
    [LDM_REASON_SAMPLE_TOO_BIG] = "sample_too_big",
    [LDM_REASON_TOO_MANY_MEMBERS] = "too_many_members",
    [LDM_REASON_DUPLICATE_EXT] = "duplicate_ext",
    [LDM_REASON_BAD_KEY] = "bad_key",
    [LDM_REASON_BAD_LINE] = "bad_line",
    [LDM_REASON_LINE_TOO_LONG] = "line_too_long",
    [LDM_REASON_BAD_BASE64] = "bad_base64",
    [LDM_REASON_UNREADABLE] = "unreadable",
    [LDM_REASON_NO_IMAGE] = "no_image",
    [LDM_REASON_NO_CAPTION] = "no_caption",
    [LDM_REASON_BAD_UTF8] = "bad_utf8",
    [LDM_REASON_BAD_JSON] = "bad_json",
    [LDM_REASON_NO_COND] = "no_cond",
    [LDM_REASON_OPEN_FAILED] = "open_failed",
    [LDM_REASON_CORRUPT] = "corrupt",
    [LDM_REASON_TRUNCATED] = "truncated",
    [LDM_REASON_PIPE_FAILED] = "pipe_failed",
};

const char *ldm_reason_name(int reason)
{
    if (reason < 0 || reason >= LDM_REASON_COUNT)
        return "unknown";
    return reason_names[reason];
}

/* ---- the sample being built ------------------------------------------------------ */

struct ldm_source *ldm_src_new(const char *url, const struct ldm_source_opts *opts,
                               const struct ldm_source_ops *ops)
{
    struct ldm_source *src = calloc(1, sizeof *src);
    if (!src)
        return NULL;
    if (opts)
        src->o = *opts;
    if (!src->o.max_member_bytes)
        src->o.max_member_bytes = DEFAULT_MAX_MEMBER;
    if (!src->o.max_members)
        src->o.max_members = DEFAULT_MAX_MEMBERS;
    if (src->o.max_member_bytes > SIZE_MAX / 8) /* keep the sums below from overflowing */
        src->o.max_member_bytes = SIZE_MAX / 8;
    if (!src->o.max_sample_bytes)
        src->o.max_sample_bytes = 4 * src->o.max_member_bytes;
    if (src->o.max_line_bytes > SIZE_MAX / 4)
        src->o.max_line_bytes = SIZE_MAX / 4;
    if (!src->o.max_line_bytes)
        src->o.max_line_bytes = src->o.max_member_bytes / 3 * 4 + (64u << 10);
    src->ops = ops;
    src->url = strdup(url);
    src->members = calloc(src->o.max_members, sizeof *src->members);
    src->bufs = calloc(src->o.max_members, sizeof *src->bufs);
    if (!src->url || !src->members || !src->bufs) {
        free(src->url);
        free(src->members);
        free(src->bufs);
        free(src);
        return NULL;
    }
    return src;
}

void ldm_src_begin(struct ldm_source *src, const char *k, size_t n)
{
    for (size_t i = 0; i < src->nmembers; i++) /* keep no huge buffer past its sample */
        if (src->bufs[i].cap > KEEP_BUFFER) {
            free(src->bufs[i].data);
            src->bufs[i].data = NULL;
            src->bufs[i].cap = 0;
        }
    src->nmembers = 0;
    src->sample_bytes = 0;
    src->reason = LDM_REASON_NONE;
    src->detail[0] = '\0';
    size_t keep = n > LDM_SOURCE_MAX_KEY ? LDM_SOURCE_MAX_KEY : n;
    memcpy(src->key, k, keep);
    src->key[keep] = '\0';
    if (n > LDM_SOURCE_MAX_KEY)
        ldm_src_reject(src, LDM_REASON_BAD_KEY, "key is %zu bytes (over %d)", n,
                       LDM_SOURCE_MAX_KEY);
    else if (!ldm_utf8_valid(k, n) || memchr(k, '\0', n))
        ldm_src_reject(src, LDM_REASON_BAD_KEY, "key is not valid UTF-8");
}

int ldm_src_wanted(const struct ldm_source *src, const char *ext)
{
    if (!src->o.want)
        return 1;
    for (const char *const *w = src->o.want; *w; w++)
        if (strcmp(*w, ext) == 0)
            return 1;
    return 0;
}

/* Checks shared by ldm_src_add: may the member `ext` of `size` bytes join? */
static int admit(struct ldm_source *src, const char *ext, size_t size)
{
    if (src->reason || !ldm_src_wanted(src, ext))
        return 0;
    if (strlen(ext) > LDM_SOURCE_MAX_KEY) {
        ldm_src_reject(src, LDM_REASON_BAD_KEY, "member ext is over %d bytes", LDM_SOURCE_MAX_KEY);
        return 0;
    }
    for (size_t i = 0; i < src->nmembers; i++)
        if (strcmp(src->members[i].ext, ext) == 0) {
            ldm_src_reject(src, LDM_REASON_DUPLICATE_EXT, "member \"%s\" appears twice", ext);
            return 0;
        }
    if (src->nmembers == src->o.max_members) {
        ldm_src_reject(src, LDM_REASON_TOO_MANY_MEMBERS, "more than %zu members",
                       src->o.max_members);
        return 0;
    }
    if (size > src->o.max_member_bytes) {
        ldm_src_reject(src, LDM_REASON_MEMBER_TOO_BIG, "member \"%s\" is %zu bytes (limit %zu)",
                       ext, size, src->o.max_member_bytes);
        return 0;
    }
    if (size > src->o.max_sample_bytes - src->sample_bytes) {
        ldm_src_reject(src, LDM_REASON_SAMPLE_TOO_BIG,
                       "members total over %zu bytes (at \"%s\", %zu bytes)",
                       src->o.max_sample_bytes, ext, size);
        return 0;
    }
    return 1;
}

unsigned char *ldm_src_add(struct ldm_source *src, const char *ext, size_t size, int *rc)
{
    *rc = 0;
    if (!admit(src, ext, size))
        return NULL;
    struct member_buf *b = &src->bufs[src->nmembers];
    snprintf(b->ext, sizeof b->ext, "%s", ext);
    src->members[src->nmembers++] = (struct ldm_member){b->ext, b->data, 0};
    src->sample_bytes += size;
    unsigned char *d = ldm_src_reserve(src, size < FIRST_CHUNK ? size : FIRST_CHUNK);
    if (!d)
        *rc = LDM_ENOMEM;
    return d;
}

unsigned char *ldm_src_reserve(struct ldm_source *src, size_t len)
{
    struct member_buf *b = &src->bufs[src->nmembers - 1];
    if (b->cap < len || !b->data) {
        size_t cap = len > 64 ? len : 64;
        unsigned char *d = realloc(b->data, cap);
        if (!d) {
            ldm_fail(LDM_ENOMEM, "%s: %s: out of memory for member \"%s\" (%zu bytes)", src->url,
                     src->key, b->ext, len);
            return NULL;
        }
        b->data = d;
        b->cap = cap;
        src->members[src->nmembers - 1].data = d;
    }
    return b->data;
}

void ldm_src_set_len(struct ldm_source *src, size_t len)
{
    src->members[src->nmembers - 1].len = len;
}

int ldm_src_add_ref(struct ldm_source *src, const char *ext, const unsigned char *data, size_t len)
{
    if (!admit(src, ext, len))
        return 0;
    struct member_buf *b = &src->bufs[src->nmembers];
    snprintf(b->ext, sizeof b->ext, "%s", ext);
    src->members[src->nmembers++] = (struct ldm_member){b->ext, data, len};
    src->sample_bytes += len;
    return 1;
}

void ldm_src_reject(struct ldm_source *src, int reason, const char *fmt, ...)
{
    if (src->reason)
        return;
    src->reason = reason;
    int n = snprintf(src->detail, sizeof src->detail, "%s: %s: ", src->url, src->key);
    if (n < 0 || (size_t)n >= sizeof src->detail)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(src->detail + n, sizeof src->detail - (size_t)n, fmt, ap);
    va_end(ap);
}

int ldm_src_fail(struct ldm_source *src, int rc, int reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(src->fail_detail, sizeof src->fail_detail, fmt, ap);
    va_end(ap);
    src->fail_rc = rc;
    src->fail_reason = reason;
    return ldm_fail(rc, "%s", src->fail_detail);
}

/* ---- iteration ------------------------------------------------------------------- */

static void fill_failure(struct ldm_source *src, struct ldm_raw_sample *s)
{
    memset(s, 0, sizeof *s);
    s->shard = src->url;
    s->key = "";
    s->index = src->index;
    s->reason = src->fail_reason;
    s->detail = src->fail_detail;
    ldm_fail(src->fail_rc, "%s", src->fail_detail);
}

int ldm_source_next(struct ldm_source *src, struct ldm_raw_sample *s)
{
    if (src->fail_rc) {
        fill_failure(src, s);
        return src->fail_rc;
    }
    int rc = src->ops->next(src);
    if (rc < 0) {
        if (!src->fail_rc) /* every kind fails through ldm_src_fail; keep the code anyway */
            ldm_src_fail(src, rc, LDM_REASON_CORRUPT, "%s", ldm_errmsg());
        fill_failure(src, s);
        return src->fail_rc;
    }
    if (rc == 0) {
        memset(s, 0, sizeof *s);
        s->shard = src->url;
        s->key = "";
        s->index = src->index;
        return 0;
    }
    *s = (struct ldm_raw_sample){
        .shard = src->url,
        .key = src->key,
        .index = src->index++,
        .members = src->members,
        .nmembers = src->nmembers,
        .reason = src->reason,
        .detail = src->reason ? src->detail : "",
    };
    return 1;
}

uint64_t ldm_source_bytes(const struct ldm_source *src)
{
    return src->bytes;
}

void ldm_source_close(struct ldm_source *src)
{
    if (!src)
        return;
    if (src->ops && src->ops->close)
        src->ops->close(src);
    for (size_t i = 0; i < src->o.max_members; i++)
        free(src->bufs[i].data);
    free(src->bufs);
    free(src->members);
    free(src->url);
    free(src);
}

/* ---- opening: kinds by content ---------------------------------------------------- */

/* Is h[0..512) a tar header (checksum right) or an all-zero end block? */
static int looks_like_tar(const unsigned char *h, size_t n)
{
    if (n < 512)
        return 0;
    unsigned long sum = 0, want = 0, zero = 1;
    for (size_t i = 0; i < 512; i++) {
        sum += (i >= 148 && i < 156) ? ' ' : h[i];
        zero &= h[i] == 0;
    }
    if (zero)
        return 1;
    size_t i = 148;
    while (i < 156 && (h[i] == ' ' || h[i] == '\0'))
        i++;
    if (i == 156 || h[i] < '0' || h[i] > '7')
        return 0;
    for (; i < 156 && h[i] >= '0' && h[i] <= '7'; i++)
        want = want * 8 + (unsigned long)(h[i] - '0');
    return sum == want;
}

/* The first up to 512 bytes a gzip stream p[0..n) inflates to, into out. */
static size_t gunzip_head(const unsigned char *p, size_t n, unsigned char *out)
{
    z_stream zs = {0};
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return 0;
    zs.next_in = (unsigned char *)p;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = 512;
    while (zs.avail_out && inflate(&zs, Z_NO_FLUSH) == Z_OK)
        ;
    size_t got = 512 - zs.avail_out;
    inflateEnd(&zs);
    return got;
}

/* The kind of a shard from its first bytes p[0..n) (n may be short of the
 * whole file; 64 KiB is plenty to inflate 512 bytes of a tar header). */
static enum ldm_source_kind sniff(const unsigned char *p, size_t n)
{
    static const unsigned char zstd[] = {0x28, 0xb5, 0x2f, 0xfd},
                               xz[] = {0xfd, '7', 'z', 'X', 'Z', 0}, bz2[] = {'B', 'Z', 'h'},
                               lz4[] = {0x04, 0x22, 0x4d, 0x18};
    if (n == 0)
        return LDM_SOURCE_TAR;
    if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b) {
        unsigned char head[512];
        size_t got = gunzip_head(p, n, head);
        return looks_like_tar(head, got) ? LDM_SOURCE_TAR : LDM_SOURCE_LINES;
    }
    if ((n >= 4 && !memcmp(p, zstd, 4)) || (n >= 6 && !memcmp(p, xz, 6)) ||
        (n >= 3 && !memcmp(p, bz2, 3)) || (n >= 4 && !memcmp(p, lz4, 4)))
        return LDM_SOURCE_TAR;
    return looks_like_tar(p, n) ? LDM_SOURCE_TAR : LDM_SOURCE_LINES;
}

/* Read the first bytes of fd (at offset 0) to tell its kind. */
static int sniff_fd(const char *url, int fd, enum ldm_source_kind *kind)
{
    enum { HEAD = 64 << 10 };
    unsigned char *head = malloc(HEAD);
    if (!head)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", url);
    size_t n = 0;
    while (n < HEAD) {
        ssize_t r = pread(fd, head + n, HEAD - n, (off_t)n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(head);
            return ldm_fail_errno(LDM_EIO, "%s: read", url);
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *kind = sniff(head, n);
    free(head);
    return 0;
}

/* A path: a folder, or a file whose content says tar or lines. */
static int open_path(const char *url, const struct ldm_source_opts *o, struct ldm_source **out)
{
    int fd = open(url, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ldm_fail_errno(errno == ENOENT ? LDM_ENOTFOUND : LDM_EIO, "%s: open", url);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return ldm_fail_errno(LDM_EIO, "%s: stat", url);
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return ldm_src_folder_open(url, o, out);
    }
    enum ldm_source_kind kind = LDM_SOURCE_TAR;
    int rc = sniff_fd(url, fd, &kind);
    if (rc) {
        close(fd);
        return rc;
    }
    return kind == LDM_SOURCE_TAR ? ldm_src_tar_open_fd(url, fd, o, out)
                                  : ldm_src_lines_open_fd(url, fd, o, out);
}

int ldm_source_open(const char *url, const struct ldm_source_opts *opts, struct ldm_source **out)
{
    *out = NULL;
    if (!url || !url[0])
        return ldm_fail(LDM_EINVAL, "shard source: empty URL");
    if (strncmp(url, "pipe:", 5) == 0) {
        if (!url[5])
            return ldm_fail(LDM_EINVAL, "%s: empty command", url);
        return ldm_src_tar_open_pipe(url, opts, out);
    }
    if (strstr(url, "://"))
        return ldm_fail(LDM_EUNSUPPORTED,
                        "%s: URL schemes are read through a command: use pipe:curl -s URL "
                        "(or another client writing the shard to stdout)",
                        url);
    return open_path(url, opts, out);
}

int ldm_source_open_memory(const void *data, size_t len, enum ldm_source_kind kind,
                           const char *name, const struct ldm_source_opts *opts,
                           struct ldm_source **out)
{
    *out = NULL;
    if (kind == LDM_SOURCE_AUTO)
        kind = sniff(data, len);
    if (kind == LDM_SOURCE_TAR)
        return ldm_src_tar_open_memory(name, data, len, opts, out);
    return ldm_src_lines_open_memory(name, data, len, opts, out);
}
