/* push.c — pack a Sample and send it with its pixel frames, waiting on back-pressure. */
#include "push.h"
#include "err.h"
#include "proto/sample_check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static ProtobufCBinaryData text(const char *s)
{
    ProtobufCBinaryData b = {s ? strlen(s) : 0, (uint8_t *)(uintptr_t)(s ? s : "")};
    return b;
}

static void layout(Ldmpipe__ImageLayout *l, const struct ldm_pixels *p)
{
    ldmpipe__image_layout__init(l);
    l->height = p->h;
    l->width = p->w;
    l->channels = p->c;
    l->dtype = LDMPIPE__DTYPE__DTYPE_UINT8;
}

/* Fill s (pointing into o) and the layouts. */
static void fill(Ldmpipe__Sample *s, Ldmpipe__ImageLayout *img, Ldmpipe__ImageLayout *cond,
                 const struct ldm_outsample *o)
{
    ldmpipe__sample__init(s);
    s->version = LDM_SAMPLE_VERSION;
    s->key = text(o->key);
    s->shard = text(o->shard);
    s->index = o->index;
    s->epoch = o->epoch;
    s->lease = o->lease;
    if (o->rejected) {
        s->rejected = text(o->rejected);
        return;
    }
    s->caption = text(o->caption);
    s->input_ids = (uint32_t *)(uintptr_t)o->ids;
    s->n_input_ids = o->nids;
    s->input_ids_2 = (uint32_t *)(uintptr_t)o->ids2;
    s->n_input_ids_2 = o->nids2;
    s->original_height = o->orig_h;
    s->original_width = o->orig_w;
    s->crop_top = o->crop_top;
    s->crop_left = o->crop_left;
    s->target_height = o->image.h;
    s->target_width = o->image.w;
    s->bucket = o->bucket;
    s->flip = o->flip != 0;
    layout(img, &o->image);
    s->image = img;
    if (o->cond.px) {
        layout(cond, &o->cond);
        s->cond = cond;
    }
}

/* Wait until the socket takes a message; idle() between waits. */
static int wait_writable(void *sock, int idle_ms, ldm_push_idle_fn idle, void *arg)
{
    for (;;) {
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLOUT, 0};
        int n = zmq_poll(&it, 1, idle_ms);
        if (n > 0)
            return 0;
        if (n < 0 && zmq_errno() != EINTR)
            return ldm_fail(LDM_EZMQ, "poll: %s", zmq_strerror(zmq_errno()));
        if (idle && idle(arg))
            return ldm_fail(LDM_ETIMEOUT, "sending stopped while the encoder's queue was full");
    }
}

static int send_frames(void *sock, const uint8_t *f0, size_t n0, const struct ldm_outsample *o)
{
    int more0 = o->rejected ? 0 : ZMQ_SNDMORE;
    int rc = zmq_send(sock, f0, n0, ZMQ_DONTWAIT | more0);
    if (rc < 0)
        return zmq_errno() == EAGAIN ? 1 : ldm_fail(LDM_EZMQ, "send: %s", zmq_strerror(zmq_errno()));
    if (o->rejected)
        return 0;
    /* after the first frame the rest of a multipart message is always taken */
    size_t n1 = (size_t)o->image.h * o->image.w * o->image.c;
    rc = zmq_send(sock, o->image.px, n1, o->cond.px ? ZMQ_SNDMORE : 0);
    if (rc >= 0 && o->cond.px)
        rc = zmq_send(sock, o->cond.px, (size_t)o->cond.h * o->cond.w * o->cond.c, 0);
    return rc < 0 ? ldm_fail(LDM_EZMQ, "send: %s", zmq_strerror(zmq_errno())) : 0;
}

int ldm_push_sample(void *sock, const struct ldm_outsample *o, int idle_ms, ldm_push_idle_fn idle,
                    void *arg)
{
    Ldmpipe__Sample s;
    Ldmpipe__ImageLayout img, cond;
    fill(&s, &img, &cond, o);
    size_t n0 = ldmpipe__sample__get_packed_size(&s);
    uint8_t *f0 = malloc(n0 ? n0 : 1);
    if (!f0)
        return ldm_fail(LDM_ENOMEM, "sample %s: out of memory", o->key);
    ldmpipe__sample__pack(&s, f0);
    int rc;
    do {
        rc = wait_writable(sock, idle_ms, idle, arg);
        if (!rc)
            rc = send_frames(sock, f0, n0, o);
    } while (rc == 1); /* taken by another writer between poll and send: wait again */
    free(f0);
    return rc;
}
