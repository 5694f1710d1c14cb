/* ring.c — collectives of F32 host buffers over a ZeroMQ ring (comm.h).
 *
 * Rank r receives on a PULL socket bound at its own data endpoint and sends
 * through a PUSH connected to rank r + 1. A message is a 32-byte header
 *     magic "LDMR" | collective number | kind, step | piece | total n | floats
 * (little-endian) followed by the floats. Within a step a rank sends at most
 * WINDOW messages ahead of the ones it has received; with high-water marks
 * of HWM messages on both sides no ring of ranks can block on a full queue.
 *
 * Reduce-scatter step s (0 .. world − 2): send chunk r − 1 − s, receive
 * chunk r − 2 − s and add own values into it (received + own), so after
 * world − 1 steps rank r holds the whole sum of chunk r, begun at rank r + 1.
 * All-gather step s: send chunk r − s, receive chunk r − 1 − s (copied).
 * Chunks are ldm_comm_shard's, or any split the caller gives (chunks may be
 * empty: a step with nothing to send or receive passes at once).
 */
#include "comm.h"
#include "err.h"
#include "le.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define MAGIC 0x524d444cu /* "LDMR" little-endian */
#define HDR 32
#define WINDOW 2
#define HWM 4

enum kind { K_REDUCE_SCATTER = 1, K_ALL_GATHER, K_BROADCAST, K_BARRIER };

static const char *kind_name(int k)
{
    switch (k) {
    case K_REDUCE_SCATTER: return "reduce-scatter";
    case K_ALL_GATHER: return "all-gather";
    case K_BROADCAST: return "broadcast";
    case K_BARRIER: return "barrier";
    default: return "?";
    }
}

struct ldm_ring {
    int rank, world, prev, next;
    void *pull, *push;
    char self_ep[LDM_RDV_ENDPOINT_MAX], prev_ep[LDM_RDV_ENDPOINT_MAX],
        next_ep[LDM_RDV_ENDPOINT_MAX];
    int timeout_ms;
    size_t piece;  /* floats per message */
    uint32_t seq;  /* number of the current collective */
    int failed;    /* a collective failed: close drops what is still queued */
};

/* What one message is expected to be. */
struct tag {
    int kind, step;
    uint32_t piece;
    uint64_t total, count;
};

static size_t pieces(const struct ldm_ring *r, size_t n)
{
    return (n + r->piece - 1) / r->piece;
}

static int send_raw(struct ldm_ring *r, const struct tag *t, const float *data)
{
    zmq_msg_t m;
    size_t bytes = (size_t)t->count * sizeof(float);
    if (zmq_msg_init_size(&m, HDR + bytes) != 0)
        return ldm_fail(LDM_ENOMEM, "ring rank %d: message of %zu bytes", r->rank, HDR + bytes);
    unsigned char *p = zmq_msg_data(&m);
    ldm_put32(p, MAGIC);
    ldm_put32(p + 4, r->seq);
    ldm_put32(p + 8, (uint32_t)t->kind | (uint32_t)t->step << 16);
    ldm_put32(p + 12, t->piece);
    ldm_put64(p + 16, t->total);
    ldm_put64(p + 24, t->count);
    if (bytes)
        memcpy(p + HDR, data, bytes);
    int rc;
    while ((rc = zmq_msg_send(&m, r->push, 0)) < 0 && zmq_errno() == EINTR)
        ;
    if (rc >= 0)
        return 0;
    int e = zmq_errno();
    zmq_msg_close(&m);
    if (e == EAGAIN)
        return ldm_fail(LDM_ETIMEOUT, "ring rank %d: rank %d (%s) took no data for %d ms in %s "
                        "#%u; it has stopped or is not calling the same collective",
                        r->rank, r->next, r->next_ep, r->timeout_ms, kind_name(t->kind), r->seq);
    return ldm_fail(LDM_EZMQ, "ring rank %d: send to rank %d (%s): %s", r->rank, r->next,
                    r->next_ep, zmq_strerror(e));
}

/* dst[i] += src[i]: src is the message's bytes (4-byte alignment not assumed). */
static void add_floats(float *dst, const unsigned char *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, src + 4 * i, sizeof v);
        dst[i] += v;
    }
}

static int check_hdr(struct ldm_ring *r, const struct tag *t, const unsigned char *p, size_t size)
{
    uint32_t ks = ldm_le32(p + 8);
    if (size >= HDR && ldm_le32(p) == MAGIC && ldm_le32(p + 4) == r->seq &&
        (int)(ks & 0xffff) == t->kind && (int)(ks >> 16) == t->step &&
        ldm_le32(p + 12) == t->piece && ldm_le64(p + 16) == t->total &&
        ldm_le64(p + 24) == t->count && size == HDR + t->count * sizeof(float))
        return 0;
    return ldm_fail(LDM_EFORMAT, "ring rank %d: from rank %d: expected %s #%u step %d piece %u "
                    "of %llu floats (n %llu), got %s #%u step %u piece %u of %llu floats (n %llu, "
                    "%zu bytes): do all ranks call the same collectives with the same sizes?",
                    r->rank, r->prev, kind_name(t->kind), r->seq, t->step, t->piece,
                    (unsigned long long)t->count, (unsigned long long)t->total,
                    kind_name((int)(ks & 0xffff)), ldm_le32(p + 4), ks >> 16, ldm_le32(p + 12),
                    (unsigned long long)ldm_le64(p + 24), (unsigned long long)ldm_le64(p + 16),
                    size);
}

/* Receive the message `t` from the predecessor into dst: added with `add`, else copied. */
static int recv_raw(struct ldm_ring *r, const struct tag *t, float *dst, int add)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    int rc;
    while ((rc = zmq_msg_recv(&m, r->pull, 0)) < 0 && zmq_errno() == EINTR)
        ;
    if (rc < 0) {
        int e = zmq_errno();
        zmq_msg_close(&m);
        if (e == EAGAIN)
            return ldm_fail(LDM_ETIMEOUT, "ring rank %d: no data from rank %d (%s) within %d ms "
                            "in %s #%u step %d; that rank, or one before it in the ring, has "
                            "stopped or is not calling the same collective",
                            r->rank, r->prev, r->prev_ep, r->timeout_ms, kind_name(t->kind),
                            r->seq, t->step);
        return ldm_fail(LDM_EZMQ, "ring rank %d: receive from rank %d (%s): %s", r->rank, r->prev,
                        r->prev_ep, zmq_strerror(e));
    }
    const unsigned char *p = zmq_msg_data(&m);
    size_t size = zmq_msg_size(&m);
    char hdr[HDR] = {0};
    memcpy(hdr, p, size < HDR ? size : HDR);
    rc = check_hdr(r, t, size < HDR ? (const unsigned char *)hdr : p, size);
    if (!rc && add)
        add_floats(dst, p + HDR, t->count);
    else if (!rc && t->count)
        memcpy(dst, p + HDR, t->count * sizeof(float));
    zmq_msg_close(&m);
    return rc;
}

/* Send or receive one message; a failure marks the ring failed. */
static int send_msg(struct ldm_ring *r, const struct tag *t, const float *data)
{
    int rc = send_raw(r, t, data);
    r->failed |= rc != 0;
    return rc;
}

static int recv_msg(struct ldm_ring *r, const struct tag *t, float *dst, int add)
{
    int rc = recv_raw(r, t, dst, add);
    r->failed |= rc != 0;
    return rc;
}

/* One ring step: send `sn` floats from `sbuf` and receive `rn` into `rbuf`
 * (added with `add`), in messages of r->piece floats, sends at most WINDOW
 * ahead of receives. */
static int ring_step(struct ldm_ring *r, int kind, int step, uint64_t total, const float *sbuf,
                     size_t sn, float *rbuf, size_t rn, int add)
{
    size_t ns = pieces(r, sn), nr = pieces(r, rn), sent = 0;
    for (size_t p = 0; p < nr || sent < ns; p++) {
        for (; sent < ns && sent < p + WINDOW; sent++) {
            size_t off = sent * r->piece, cnt = sn - off < r->piece ? sn - off : r->piece;
            struct tag t = {kind, step, (uint32_t)sent, total, cnt};
            int rc = send_msg(r, &t, sbuf + off);
            if (rc)
                return rc;
        }
        if (p < nr) {
            size_t off = p * r->piece, cnt = rn - off < r->piece ? rn - off : r->piece;
            struct tag t = {kind, step, (uint32_t)p, total, cnt};
            int rc = recv_msg(r, &t, rbuf + off, add);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int mod(int a, int w)
{
    return ((a % w) + w) % w;
}

/* Rank k's part of n elements: bound[k] .. bound[k + 1] − 1, or ldm_comm_shard's. */
static void part(size_t n, int w, const size_t *bound, int k, size_t *off, size_t *cnt)
{
    if (!bound) {
        ldm_comm_shard(n, w, k, off, cnt);
        return;
    }
    *off = bound[k];
    *cnt = bound[k + 1] - bound[k];
}

int ldm_ring_reduce_scatter(struct ldm_ring *r, float *buf, size_t n, const size_t *bound, int op)
{
    int w = r->world;
    r->seq++;
    for (int s = 0; s < w - 1; s++) {
        size_t so, sc, ro, rcnt;
        part(n, w, bound, mod(r->rank - 1 - s, w), &so, &sc);
        part(n, w, bound, mod(r->rank - 2 - s, w), &ro, &rcnt);
        int rc = ring_step(r, K_REDUCE_SCATTER, s, n, buf + so, sc, buf + ro, rcnt, 1);
        if (rc)
            return rc;
    }
    if (op == LDM_REDUCE_AVG) {
        size_t off, cnt;
        part(n, w, bound, r->rank, &off, &cnt);
        for (size_t i = 0; i < cnt; i++)
            buf[off + i] /= (float)w;
    }
    return 0;
}

int ldm_ring_all_gather(struct ldm_ring *r, float *buf, size_t n, const size_t *bound)
{
    int w = r->world;
    r->seq++;
    for (int s = 0; s < w - 1; s++) {
        size_t so, sc, ro, rcnt;
        part(n, w, bound, mod(r->rank - s, w), &so, &sc);
        part(n, w, bound, mod(r->rank - 1 - s, w), &ro, &rcnt);
        int rc = ring_step(r, K_ALL_GATHER, s, n, buf + so, sc, buf + ro, rcnt, 0);
        if (rc)
            return rc;
    }
    return 0;
}

int ldm_ring_allreduce(struct ldm_ring *r, float *buf, size_t n, int op)
{
    int rc = ldm_ring_reduce_scatter(r, buf, n, NULL, op);
    return rc ? rc : ldm_ring_all_gather(r, buf, n, NULL);
}

/* A chain from root around the ring: each rank receives a piece, passes it on. */
int ldm_ring_broadcast(struct ldm_ring *r, float *buf, size_t n, int root)
{
    r->seq++;
    int forward = r->next != root;
    size_t np = pieces(r, n);
    for (size_t p = 0; p < np; p++) {
        size_t off = p * r->piece, cnt = n - off < r->piece ? n - off : r->piece;
        struct tag t = {K_BROADCAST, 0, (uint32_t)p, n, cnt};
        int rc = r->rank == root ? 0 : recv_msg(r, &t, buf + off, 0);
        if (!rc && (r->rank == root || forward))
            rc = send_msg(r, &t, buf + off);
        if (rc)
            return rc;
    }
    return 0;
}

/* A token twice around the ring from rank 0: the first round finds every
 * rank arrived, the second lets them go. */
int ldm_ring_barrier(struct ldm_ring *r)
{
    r->seq++;
    for (int round = 0; round < 2; round++) {
        struct tag t = {K_BARRIER, round, 0, 0, 0};
        int rc = r->rank == 0 ? send_msg(r, &t, NULL) : recv_msg(r, &t, NULL, 0);
        if (!rc)
            rc = r->rank == 0 ? recv_msg(r, &t, NULL, 0) : send_msg(r, &t, NULL);
        if (rc)
            return rc;
    }
    return 0;
}

static int set_opts(struct ldm_ring *r)
{
    int hwm = HWM, zero = 0, tmo = r->timeout_ms;
    int64_t maxmsg = (int64_t)(HDR + r->piece * sizeof(float));
    if (zmq_setsockopt(r->pull, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(r->pull, ZMQ_RCVTIMEO, &tmo, sizeof tmo) ||
        zmq_setsockopt(r->pull, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_setsockopt(r->pull, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) ||
        zmq_setsockopt(r->push, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(r->push, ZMQ_SNDTIMEO, &tmo, sizeof tmo) ||
        zmq_setsockopt(r->push, ZMQ_LINGER, &tmo, sizeof tmo))
        return ldm_fail(LDM_EZMQ, "ring rank %d: socket options: %s", r->rank,
                        zmq_strerror(zmq_errno()));
    return 0;
}

static int ring_sockets(struct ldm_ring *r, void *zctx, const struct ldm_rdv_table *t,
                        const struct ldm_comm_opts *o)
{
    r->pull = zmq_socket(zctx, ZMQ_PULL);
    r->push = zmq_socket(zctx, ZMQ_PUSH);
    if (!r->pull || !r->push)
        return ldm_fail(LDM_EZMQ, "ring rank %d: socket: %s", r->rank, zmq_strerror(zmq_errno()));
    int rc = set_opts(r);
    if (!rc)
        rc = ldm_zbind(r->pull, r->self_ep, o->sec);
    if (rc) {
        r->self_ep[0] = '\0'; /* not ours to unlink */
        return rc;
    }
    const char *key = t->ent[r->next].key;
    return ldm_zconnect(r->push, r->next_ep, *key ? key : NULL, o->client);
}

int ldm_ring_open(struct ldm_ring **out, void *zctx, int rank, int world,
                  const struct ldm_rdv_table *t, const struct ldm_comm_opts *o)
{
    *out = NULL;
    struct ldm_ring *r = calloc(1, sizeof *r);
    if (!r)
        return ldm_fail(LDM_ENOMEM, "ring rank %d", rank);
    r->rank = rank;
    r->world = world;
    r->prev = mod(rank - 1, world);
    r->next = mod(rank + 1, world);
    snprintf(r->self_ep, sizeof r->self_ep, "%s", t->ent[rank].endpoint);
    snprintf(r->prev_ep, sizeof r->prev_ep, "%s", t->ent[r->prev].endpoint);
    snprintf(r->next_ep, sizeof r->next_ep, "%s", t->ent[r->next].endpoint);
    r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 60000;
    size_t msg = o->max_msg_bytes ? o->max_msg_bytes : LDM_COMM_MSG_DEFAULT;
    r->piece = msg / sizeof(float) ? msg / sizeof(float) : 1;
    int rc = ring_sockets(r, zctx, t, o);
    if (rc) {
        ldm_ring_close(&r);
        return rc;
    }
    LOG_DEBUG("ring open", "rank=%d world=%d bind=%s next=%s msg_floats=%zu", rank, world,
              r->self_ep, r->next_ep, r->piece);
    *out = r;
    return 0;
}

void ldm_ring_close(struct ldm_ring **pr)
{
    struct ldm_ring *r = pr ? *pr : NULL;
    if (!r)
        return;
    if (r->push && r->failed) { /* nobody waits for the rest */
        int zero = 0;
        zmq_setsockopt(r->push, ZMQ_LINGER, &zero, sizeof zero);
    }
    if (r->push)
        zmq_close(r->push);
    if (r->pull)
        zmq_close(r->pull);
    if (r->pull && r->self_ep[0])
        ldm_ipc_unlink(r->self_ep);
    free(r);
    *pr = NULL;
}
