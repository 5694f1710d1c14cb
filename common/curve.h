/* curve.h — CURVE key pairs, key files, the client allow-list and the ZAP handler.
 *
 * Key file (written by `ldmctl keygen NAME`): NAME.key, mode 0600, holds
 *     public = <40 Z85 characters>
 *     secret = <40 Z85 characters>
 * and NAME.pub, mode 0644, the public line alone. '#' starts a comment.
 * An allow-list file holds one public key per line, bare or as a
 * `public = KEY` line, so .pub files can be concatenated into it.
 */
#ifndef LDM_CURVE_H
#define LDM_CURVE_H

#include <stddef.h>

#define LDM_Z85_KEY_LEN 40

struct ldm_keypair {
    char public_key[LDM_Z85_KEY_LEN + 1];
    char secret_key[LDM_Z85_KEY_LEN + 1]; /* "" when only the public key is known */
};

/* New random key pair (libzmq's zmq_curve_keypair). LDM_EUNSUPPORTED when
 * libzmq was built without CURVE. */
int ldm_keypair_new(struct ldm_keypair *kp);

/* Write BASE.key (0600) and BASE.pub (0644), each atomically. Refuses to
 * overwrite an existing BASE.key (LDM_EEXIST). */
int ldm_keypair_write(const char *base, const struct ldm_keypair *kp);

/* Read a .key file (both keys) or a .pub file (public only). LDM_EFORMAT
 * names the file and line of anything malformed. */
int ldm_keypair_read(const char *path, struct ldm_keypair *kp);

/* A server's public key given as 40 Z85 characters or as a key file path. */
int ldm_public_key_arg(const char *arg, char out[LDM_Z85_KEY_LEN + 1]);

/* 1 when `s` is 40 characters of the Z85 alphabet that decode. */
int ldm_z85_key_valid(const char *s);

struct ldm_allowlist;

/* Load an allow-list file; LDM_EFORMAT names file and line of a bad key. */
int ldm_allowlist_load(const char *path, struct ldm_allowlist **out);
int ldm_allowlist_has(const struct ldm_allowlist *al, const char *z85_public);
size_t ldm_allowlist_count(const struct ldm_allowlist *al);
void ldm_allowlist_free(struct ldm_allowlist **al);

#endif
