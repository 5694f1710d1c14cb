/* fuzz_control.c — control-plane requests: parse, read the common fields,
 * answer, encode the answer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "ctlmsg.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *req = NULL;
    const char *op = NULL, *arg = NULL;
    if (ldm_ctl_parse_request(data, size, &req, &op) != 0)
        return 0;
    int64_t step;
    int flag;
    double x;
    json_t *reply = json_object();
    if (ldm_json_get_str(req, "arg", &arg, "latest") == 0)
        json_object_set_new(reply, "arg", json_string(arg));
    if (ldm_json_get_int(req, "step", &step, -1) == 0)
        json_object_set_new(reply, "step", json_integer(step));
    if (ldm_json_get_bool(req, "ema", &flag, 0) == 0 && ldm_json_get_real(req, "x", &x, 0) == 0)
        json_object_set_new(reply, "op", json_string(op));
    char *text = ldm_json_dump(reply);
    free(text);
    json_decref(reply);
    json_decref(req);
    return 0;
}
