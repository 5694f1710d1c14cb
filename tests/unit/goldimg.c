/* goldimg.c — helpers for the image tests: run the PIL golden script, read PPM/PGM, compare. */
#include "goldimg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

void *gi_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)(n > 0 ? n : 0) + 1);
    ck_assert_msg(buf && fread(buf, 1, (size_t)n, f) == (size_t)n, "cannot read %s", path);
    buf[n] = '\0'; /* text files read as strings */
    fclose(f);
    *len = (size_t)n;
    return buf;
}

void gi_run_golden(const char *mode, const char *dir)
{
    ck_assert_msg(access(GI_SCRIPT, R_OK) == 0,
                  "%s not found: run the unit tests from the repository root", GI_SCRIPT);
    ck_assert_msg(access(GI_PYTHON, X_OK) == 0,
                  "%s is missing: the golden image tests need Debian's python3 with python3-pil, "
                  "python3-numpy and python3-torchvision (make deps)", GI_PYTHON);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s %s '%s' 2>'%s/golden.err'", GI_PYTHON, GI_SCRIPT, mode, dir,
             dir);
    int st = system(cmd);
    if (st != 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s/golden.err", dir);
        size_t len;
        char *err = gi_read_file(path, &len);
        ck_abort_msg("%s %s %s failed (status %d): %.*s", GI_PYTHON, GI_SCRIPT, mode,
                     WIFEXITED(st) ? WEXITSTATUS(st) : st, (int)(len > 2000 ? 2000 : len), err);
    }
}

/* The next header number of a PNM, skipping whitespace and comments. */
static int pnm_number(const char *buf, size_t len, size_t *pos)
{
    while (*pos < len && (buf[*pos] == ' ' || buf[*pos] == '\n' || buf[*pos] == '\t' ||
                          buf[*pos] == '\r' || buf[*pos] == '#')) {
        if (buf[*pos] == '#')
            while (*pos < len && buf[*pos] != '\n')
                (*pos)++;
        else
            (*pos)++;
    }
    int v = 0, digits = 0;
    while (*pos < len && buf[*pos] >= '0' && buf[*pos] <= '9' && digits < 9) {
        v = v * 10 + (buf[(*pos)++] - '0');
        digits++;
    }
    return digits ? v : -1;
}

void gi_read_pnm(const char *path, struct ldm_image *im)
{
    size_t len, pos = 2;
    char *buf = gi_read_file(path, &len);
    ck_assert_msg(len > 2 && buf[0] == 'P' && (buf[1] == '5' || buf[1] == '6'),
                  "%s: not a binary PGM/PPM", path);
    int c = buf[1] == '6' ? 3 : 1;
    int w = pnm_number(buf, len, &pos), h = pnm_number(buf, len, &pos);
    int maxv = pnm_number(buf, len, &pos);
    pos++; /* the single whitespace after maxval */
    ck_assert_msg(w > 0 && h > 0 && maxv == 255, "%s: bad PNM header", path);
    ck_assert_msg(len - pos == (size_t)w * h * c, "%s: %zu pixel bytes for %dx%dx%d", path,
                  len - pos, w, h, c);
    ck_ok(ldm_image_alloc(im, w, h, c));
    memcpy(im->px, buf + pos, (size_t)w * h * c);
    free(buf);
}

char **gi_read_lines(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t len;
    char *text = gi_read_file(path, &len);
    size_t cap = 16, n = 0;
    char **lines = malloc(cap * sizeof *lines);
    for (char *save = NULL, *s = strtok_r(text, "\n", &save); s; s = strtok_r(NULL, "\n", &save)) {
        if (n + 1 >= cap)
            lines = realloc(lines, (cap *= 2) * sizeof *lines);
        lines[n++] = strdup(s);
    }
    lines[n] = NULL;
    free(text);
    return lines;
}

void gi_free_lines(char **lines)
{
    for (char **l = lines; l && *l; l++)
        free(*l);
    free(lines);
}

long gi_compare(const char *what, const struct ldm_image *got, const struct ldm_image *want,
                int *maxerr, double *sumerr)
{
    if (maxerr)
        *maxerr = 0;
    if (sumerr)
        *sumerr = 0;
    if (got->w != want->w || got->h != want->h || got->c != want->c) {
        fprintf(stderr, "%s: size %dx%dx%d, expected %dx%dx%d\n", what, got->w, got->h, got->c,
                want->w, want->h, want->c);
        return -1;
    }
    long bad = 0;
    int worst = 0;
    double sum = 0;
    size_t n = (size_t)got->w * got->h * got->c;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)got->px[i] - (int)want->px[i]);
        if (!d)
            continue;
        sum += d;
        worst = d > worst ? d : worst;
        if (bad++ < 6) {
            size_t px = i / (size_t)got->c;
            fprintf(stderr, "%s: (x %zu, y %zu, ch %zu) = %d, expected %d\n", what,
                    px % (size_t)got->w, px / (size_t)got->w, i % (size_t)got->c, got->px[i],
                    want->px[i]);
        }
    }
    if (bad)
        fprintf(stderr, "%s: %ld of %zu samples differ, largest error %d\n", what, bad, n, worst);
    if (maxerr)
        *maxerr = worst;
    if (sumerr)
        *sumerr = sum;
    return bad;
}
