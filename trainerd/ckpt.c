/* ckpt.c — atomic checkpoint folders, pruning, finding the latest. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fsutil.h"
#include "log.h"
#include "trainerd/ckpt.h"

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p) ? -1 : 0;
}

int td_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) && errno == ENOENT)
        return 0;
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS))
        return ldm_fail_errno(LDM_EIO, "%s: remove", path);
    return 0;
}

int td_ckpt_begin(const char *out, int64_t step, char *tmp, size_t size)
{
    if (mkdir(out, 0777) && errno != EEXIST)
        return ldm_fail_errno(LDM_EIO, "output folder %s: mkdir", out);
    if (snprintf(tmp, size, "%s/.checkpoint-%lld.tmp", out, (long long)step) >= (int)size)
        return ldm_fail(LDM_EINVAL, "%s: path too long", out);
    int rc = td_rmtree(tmp);
    if (!rc && mkdir(tmp, 0777))
        rc = ldm_fail_errno(LDM_EIO, "%s: mkdir", tmp);
    return rc;
}

/* fsync every file and folder under dir (the folders after their contents). */
static int sync_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    int fd = open(p, O_RDONLY | (flag == FTW_DP ? O_DIRECTORY : 0));
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int td_ckpt_commit(const char *out, int64_t step, const char *tmp, char *final, size_t size)
{
    if (snprintf(final, size, "%s/checkpoint-%lld", out, (long long)step) >= (int)size)
        return ldm_fail(LDM_EINVAL, "%s: path too long", out);
    if (nftw(tmp, sync_one, 16, FTW_DEPTH | FTW_PHYS))
        return ldm_fail_errno(LDM_EIO, "%s: fsync", tmp);
    int rc = td_rmtree(final);
    if (!rc && rename(tmp, final))
        rc = ldm_fail_errno(LDM_EIO, "rename %s -> %s", tmp, final);
    if (!rc)
        rc = ldm_fsync_dir(out);
    return rc;
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

int td_ckpt_clean(const char *out)
{
    DIR *d = opendir(out);
    int n = 0;
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, ".checkpoint-", 12) || l < 5 || strcmp(e->d_name + l - 4, ".tmp"))
            continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", out, e->d_name);
        if (!td_rmtree(p)) {
            LOG_WARN("unfinished checkpoint removed", "path=%s", p);
            n++;
        }
    }
    closedir(d);
    return n;
}

/* The steps of every checkpoint in out, ascending, into *v (malloc'd). */
static int list_steps(const char *out, int64_t **v, size_t *n)
{
    *v = NULL;
    *n = 0;
    DIR *d = opendir(out);
    if (!d)
        return errno == ENOENT ? 0 : ldm_fail_errno(LDM_EIO, "%s: opendir", out);
    struct dirent *e;
    size_t cap = 0;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        int64_t s = step_of(e->d_name);
        if (s < 0)
            continue;
        if (*n == cap) {
            int64_t *nv = realloc(*v, (cap = cap ? cap * 2 : 16) * sizeof *nv);
            if (!nv)
                rc = ldm_fail(LDM_ENOMEM, "%s: listing", out);
            else
                *v = nv;
        }
        if (!rc)
            (*v)[(*n)++] = s;
    }
    closedir(d);
    for (size_t i = 1; !rc && i < *n; i++)
        for (size_t j = i; j > 0 && (*v)[j - 1] > (*v)[j]; j--) {
            int64_t t = (*v)[j];
            (*v)[j] = (*v)[j - 1];
            (*v)[j - 1] = t;
        }
    return rc;
}

int td_ckpt_prune(const char *out, int64_t keep)
{
    int64_t *v;
    size_t n;
    int rc = list_steps(out, &v, &n);
    for (size_t i = 0; !rc && keep > 0 && i + (size_t)keep < n; i++) {
        char p[4400];
        snprintf(p, sizeof p, "%s/checkpoint-%lld", out, (long long)v[i]);
        rc = td_rmtree(p);
        if (!rc)
            LOG_INFO("checkpoint pruned", "path=%s keep_last=%lld", p, (long long)keep);
    }
    free(v);
    return rc;
}

int td_ckpt_latest(const char *out, char *path, size_t size, int64_t *step)
{
    int64_t *v;
    size_t n;
    int rc = list_steps(out, &v, &n);
    if (!rc && !n)
        rc = ldm_fail(LDM_ENOTFOUND, "%s: no checkpoint-STEP folder to resume from", out);
    if (!rc) {
        *step = v[n - 1];
        snprintf(path, size, "%s/checkpoint-%lld", out, (long long)v[n - 1]);
    }
    free(v);
    return rc;
}
