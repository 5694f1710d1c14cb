/* zap.h — the ZAP handler: who may complete a CURVE handshake with us.
 *
 * libzmq asks the handler bound at inproc://zeromq.zap.01 in a context
 * about every handshake on a socket with a ZAP domain (RFC 27/ZAP).
 */
#ifndef LDM_ZAP_H
#define LDM_ZAP_H

#include "curve.h"

/* Start the handler: a thread answering libzmq's authentication requests on
 * inproc://zeromq.zap.01 in `zctx`. CURVE clients are let in when their
 * public key is in the allow-list; everyone else is refused and logged
 * (once per key). The handler owns `al`. */
struct ldm_zap;
int ldm_zap_start(void *zctx, struct ldm_allowlist *al, struct ldm_zap **out);
/* Swap in a new allow-list (after a reload); the old one is freed. */
void ldm_zap_set_allowlist(struct ldm_zap *z, struct ldm_allowlist *al);
/* Number of refused handshakes so far. */
unsigned long ldm_zap_denied(const struct ldm_zap *z);
void ldm_zap_stop(struct ldm_zap **z);

#endif
