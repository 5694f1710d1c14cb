/* ctlmsg.c — control-plane request parsing and error replies. */
#include "ctlmsg.h"
#include "err.h"
#include "json.h"

#include <string.h>

static int op_valid(const char *op)
{
    size_t n = strlen(op);
    return n >= 1 && n <= 32 && strspn(op, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

int ldm_ctl_parse_request(const void *buf, size_t len, json_t **req, const char **op)
{
    json_t *r = NULL;
    const char *name = NULL;
    if (len > LDM_CTL_MAX_REQUEST)
        return ldm_fail(LDM_EFORMAT, "request of %zu bytes is over the %d-byte limit", len,
                        LDM_CTL_MAX_REQUEST);
    int rc = ldm_json_parse_object(buf, len, "request", &r);
    if (rc)
        return rc;
    if (ldm_json_get_str(r, "op", &name, NULL) != 0 || !name) {
        json_decref(r);
        return ldm_fail(LDM_EFORMAT, "request needs a string field \"op\"");
    }
    if (!op_valid(name)) {
        json_decref(r);
        return ldm_fail(LDM_EFORMAT, "request op is not 1-32 characters of [a-z0-9_]");
    }
    *req = r;
    *op = name;
    return 0;
}

json_t *ldm_ctl_error_reply(const char *text)
{
    json_t *r = json_object();
    json_object_set_new(r, "ok", json_false());
    json_object_set_new(r, "error", json_string(text));
    return r;
}
