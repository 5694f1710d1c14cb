/* daemon_stats.c — named counters and their rates over the last seconds. */
#include "daemon_int.h"

#include <string.h>

_Atomic uint64_t *ldm_daemon_counter(struct ldm_daemon *d, const char *name)
{
    for (int i = 0; i < d->ncounters; i++)
        if (!strcmp(d->counters[i].name, name))
            return &d->counters[i].value;
    if (d->ncounters == MAX_COUNTERS || strlen(name) >= sizeof d->counters[0].name)
        return NULL;
    struct counter *c = &d->counters[d->ncounters++];
    strcpy(c->name, name);
    atomic_store(&c->value, 0);
    memset(c->hist, 0, sizeof c->hist);
    return &c->value;
}

/* Called once a second by the loop: shift each counter's history. */
void ldm_daemon_sample_rates(struct ldm_daemon *d)
{
    for (int i = 0; i < d->ncounters; i++) {
        struct counter *c = &d->counters[i];
        memmove(c->hist + 1, c->hist, (RATE_SLOTS - 1) * sizeof c->hist[0]);
        c->hist[0] = atomic_load(&c->value);
    }
    if (d->rate_samples < RATE_SLOTS)
        d->rate_samples++;
}

void ldm_daemon_add_counters(struct ldm_daemon *d, json_t *reply)
{
    json_t *counters = json_object(), *rates = json_object();
    int span = d->rate_samples - 1; /* seconds between oldest and newest sample */
    for (int i = 0; i < d->ncounters; i++) {
        struct counter *c = &d->counters[i];
        json_object_set_new(counters, c->name, json_integer((json_int_t)atomic_load(&c->value)));
        double r = span > 0 ? (double)(c->hist[0] - c->hist[span]) / span : 0.0;
        json_object_set_new(rates, c->name, json_real(r));
    }
    json_object_set_new(reply, "counters", counters);
    json_object_set_new(reply, "rates", rates);
}
