/* ctlmsg.h — control-plane requests (proto/control.md): parsing and replies. */
#ifndef LDM_CTLMSG_H
#define LDM_CTLMSG_H

#include <jansson.h>
#include <stddef.h>

#define LDM_CTL_MAX_REQUEST (64 * 1024)

/* Parse one request frame: at most LDM_CTL_MAX_REQUEST bytes of JSON, an
 * object with a string "op" of 1-32 characters [a-z0-9_]. On success *req
 * is a new reference and *op points into it. Returns 0 or LDM_EFORMAT with
 * a detail saying what is wrong. */
int ldm_ctl_parse_request(const void *buf, size_t len, json_t **req, const char **op);

/* A new {"ok": false, "error": TEXT} reply. */
json_t *ldm_ctl_error_reply(const char *text);

#endif
