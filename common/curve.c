/* curve.c — CURVE keys, key files, allow-list and the ZAP handler thread. */
#include "curve.h"
#include "err.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

int ldm_z85_key_valid(const char *s)
{
    uint8_t bin[32];
    if (!s || strlen(s) != LDM_Z85_KEY_LEN)
        return 0;
    return zmq_z85_decode(bin, s) != NULL;
}

int ldm_keypair_new(struct ldm_keypair *kp)
{
    if (!zmq_has("curve"))
        return ldm_fail(LDM_EUNSUPPORTED, "this libzmq was built without CURVE");
    if (zmq_curve_keypair(kp->public_key, kp->secret_key) != 0)
        return ldm_fail(LDM_EZMQ, "zmq_curve_keypair: %s", zmq_strerror(zmq_errno()));
    return 0;
}

static int write_new(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return ldm_fail_errno(errno == EEXIST ? LDM_EEXIST : LDM_EIO, "%s", path);
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    close(fd);
    if (!ok) {
        unlink(path);
        return ldm_fail_errno(LDM_EIO, "%s: write failed", path);
    }
    return 0;
}

int ldm_keypair_write(const char *base, const struct ldm_keypair *kp)
{
    char path[4096], text[256];
    snprintf(path, sizeof path, "%s.key", base);
    snprintf(text, sizeof text,
             "# ldmpipe CURVE key pair: keep this file secret\npublic = %s\nsecret = %s\n",
             kp->public_key, kp->secret_key);
    int rc = write_new(path, text, 0600);
    if (rc)
        return rc;
    snprintf(path, sizeof path, "%s.pub", base);
    snprintf(text, sizeof text, "# ldmpipe CURVE public key\npublic = %s\n", kp->public_key);
    unlink(path);
    return write_new(path, text, 0644);
}

/* Split a key-file line into name and value. Z85 keys may hold '=' and
 * '#', so: blank lines and lines starting with '#' give name == NULL; a
 * first word of exactly 40 characters is a bare key (name ""); otherwise
 * the line is `name = value`. Anything after the value must be a blank and
 * a '#' comment, else value is set to "" (malformed). Modifies line. */
static void split_line(char *line, char **name, char **value)
{
    *name = *value = NULL;
    line[strcspn(line, "\r\n")] = '\0';
    char *s = line + strspn(line, " \t");
    if (!*s || *s == '#')
        return;
    size_t w = strcspn(s, " \t");
    char *v = s;
    if (w == LDM_Z85_KEY_LEN) {
        *name = "";
    } else {
        size_t nl = strspn(s, "abcdefghijklmnopqrstuvwxyz_");
        char *eq = s + nl + strspn(s + nl, " \t");
        if (nl == 0 || *eq != '=') {
            *name = "?";
            *value = "";
            return;
        }
        s[nl] = '\0';
        *name = s;
        v = eq + 1 + strspn(eq + 1, " \t");
        w = strcspn(v, " \t");
    }
    char *rest = v + w + strspn(v + w, " \t");
    if (*rest && *rest != '#') {
        *value = "";
        return;
    }
    v[w] = '\0';
    *value = v;
}

int ldm_keypair_read(const char *path, struct ldm_keypair *kp)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return ldm_fail_errno(LDM_ENOTFOUND, "key file %s", path);
    memset(kp, 0, sizeof *kp);
    char line[512];
    int lineno = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        char *name, *value;
        lineno++;
        split_line(line, &name, &value);
        if (!name)
            continue;
        char *dst = !strcmp(name, "public") || !*name ? kp->public_key
                    : !strcmp(name, "secret") ? kp->secret_key : NULL;
        if (!dst)
            rc = ldm_fail(LDM_EFORMAT, "%s:%d: expected 'public = KEY' or 'secret = KEY'", path,
                          lineno);
        else if (!ldm_z85_key_valid(value))
            rc = ldm_fail(LDM_EFORMAT, "%s:%d: '%s' is not a 40-character Z85 key", path, lineno,
                          name);
        else
            memcpy(dst, value, LDM_Z85_KEY_LEN + 1);
    }
    fclose(f);
    if (!rc && !kp->public_key[0])
        rc = ldm_fail(LDM_EFORMAT, "%s: no public key in the file", path);
    return rc;
}

int ldm_public_key_arg(const char *arg, char out[LDM_Z85_KEY_LEN + 1])
{
    if (ldm_z85_key_valid(arg)) {
        memcpy(out, arg, LDM_Z85_KEY_LEN + 1);
        return 0;
    }
    struct ldm_keypair kp;
    int rc = ldm_keypair_read(arg, &kp);
    if (rc)
        return rc;
    memcpy(out, kp.public_key, LDM_Z85_KEY_LEN + 1);
    return 0;
}

struct ldm_allowlist {
    char (*keys)[LDM_Z85_KEY_LEN + 1];
    size_t n;
};

static int allow_add(struct ldm_allowlist *al, const char *key)
{
    void *p = realloc(al->keys, (al->n + 1) * sizeof *al->keys);
    if (!p)
        return ldm_fail(LDM_ENOMEM, "allow-list: out of memory");
    al->keys = p;
    memcpy(al->keys[al->n++], key, LDM_Z85_KEY_LEN + 1);
    return 0;
}

int ldm_allowlist_load(const char *path, struct ldm_allowlist **out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return ldm_fail_errno(LDM_ENOTFOUND, "allow-list %s", path);
    struct ldm_allowlist *al = calloc(1, sizeof *al);
    char line[512];
    int lineno = 0, rc = al ? 0 : ldm_fail(LDM_ENOMEM, "allow-list: out of memory");
    while (!rc && fgets(line, sizeof line, f)) {
        char *name, *value;
        lineno++;
        split_line(line, &name, &value);
        if (!name)
            continue;
        if ((*name && strcmp(name, "public") != 0) || !ldm_z85_key_valid(value))
            rc = ldm_fail(LDM_EFORMAT, "%s:%d: expected a 40-character Z85 public key", path,
                          lineno);
        else
            rc = allow_add(al, value);
    }
    fclose(f);
    if (rc) {
        ldm_allowlist_free(&al);
        return rc;
    }
    *out = al;
    return 0;
}

int ldm_allowlist_has(const struct ldm_allowlist *al, const char *z85_public)
{
    for (size_t i = 0; al && i < al->n; i++)
        if (strcmp(al->keys[i], z85_public) == 0)
            return 1;
    return 0;
}

size_t ldm_allowlist_count(const struct ldm_allowlist *al)
{
    return al ? al->n : 0;
}

void ldm_allowlist_free(struct ldm_allowlist **al)
{
    if (!*al)
        return;
    free((*al)->keys);
    free(*al);
    *al = NULL;
}
