/* queue.c — the evaluation queue and the done markers. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "evald/queue.h"

int ev_done(const struct ev_queue *q, int64_t step)
{
    char p[4200];
    struct stat st;
    snprintf(p, sizeof p, "%s/eval/step-%lld.json", q->output, (long long)step);
    return stat(p, &st) == 0;
}

int ev_queue_add(struct ev_queue *q, int64_t step, int forced)
{
    if (step < 0 || (!forced && q->eval_every > 1 && step % q->eval_every) || ev_done(q, step))
        return 0;
    size_t i = 0;
    while (i < q->n && q->steps[i] < step)
        i++;
    if (i < q->n && q->steps[i] == step)
        return 0;
    if (q->n == q->cap) {
        size_t nc = q->cap ? q->cap * 2 : 16;
        int64_t *ns = realloc(q->steps, nc * sizeof *ns);
        if (!ns)
            return ldm_fail(LDM_ENOMEM, "evaluation queue");
        q->steps = ns, q->cap = nc;
    }
    memmove(q->steps + i + 1, q->steps + i, (q->n - i) * sizeof *q->steps);
    q->steps[i] = step;
    q->n++;
    return 1;
}

/* checkpoint-N -> N; -1 for other names. */
static int64_t step_of(const char *name)
{
    if (strncmp(name, "checkpoint-", 11) || !name[11])
        return -1;
    char *end;
    long long v = strtoll(name + 11, &end, 10);
    return *end || v < 0 ? -1 : (int64_t)v;
}

int ev_queue_scan(struct ev_queue *q, const char *dir, int64_t busy)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int added = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s = step_of(e->d_name);
        int r = s >= 0 && s != busy ? ev_queue_add(q, s, 0) : 0;
        if (r > 0)
            added++;
    }
    closedir(d);
    return added;
}

int64_t ev_latest(const char *dir)
{
    DIR *d = opendir(dir);
    int64_t best = -1;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int64_t s = step_of(e->d_name);
        if (s > best)
            best = s;
    }
    if (d)
        closedir(d);
    return best;
}

int ev_queue_pop(struct ev_queue *q, int64_t *step)
{
    if (!q->n)
        return 0;
    if (q->latest_only) {
        *step = q->steps[q->n - 1];
        q->n = 0;
        return 1;
    }
    *step = q->steps[0];
    memmove(q->steps, q->steps + 1, (q->n - 1) * sizeof *q->steps);
    q->n--;
    return 1;
}

void ev_queue_free(struct ev_queue *q)
{
    free(q->steps);
    q->steps = NULL;
    q->n = q->cap = 0;
}
