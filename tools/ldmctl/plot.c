/* plot.c — `ldmctl plot`: trainerd's loss curve as a PNG, drawn by our own code.
 *
 * metrics.jsonl -> points (step, loss) sorted by step, a repeated step keeping
 * its last line (a resumed run logs again the steps after its checkpoint) -> a
 * trailing moving average -> an RGB canvas: grid lines, axes with tick marks and
 * labels (font.h), the raw curve, the average and a legend -> PNG
 * (common/image.h), written atomically (common/fsutil.h).
 */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "font.h"
#include "fsutil.h"
#include "image.h"
#include "json.h"
#include "ldmctl.h"

#define SIDE_MIN 160
#define SIDE_MAX 8192

struct point {
    int64_t step;
    double loss;
    size_t line; /* 1-based line in the file: the later of two equal steps wins */
};

struct series {
    struct point *p;
    double *avg; /* trailing moving average, one per point */
    size_t n, cap;
};

struct rgb {
    unsigned char r, g, b;
};

/* An image and the rectangle drawing is clipped to (inclusive). */
struct canvas {
    struct ldm_image im;
    int cx0, cy0, cx1, cy1;
};

/* Where the data go on the canvas: the plot area and the axis ranges. */
struct frame {
    int x0, y0, x1, y1;        /* plot area in pixels, inclusive; y0 is the top */
    double xlo, xhi, xtick;    /* step axis */
    double ylo, yhi, ytick;    /* loss axis */
    int scale;                 /* font scale */
};

static const struct rgb WHITE = {255, 255, 255}, BLACK = {0, 0, 0}, GRID = {228, 228, 228},
                        RAW = {150, 190, 235}, AVG = {190, 30, 30}, GREY = {90, 90, 90};

/* ---- reading metrics.jsonl ------------------------------------------------------- */

static int series_add(struct series *s, int64_t step, double loss, size_t line)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        struct point *p = realloc(s->p, cap * sizeof *p);
        if (!p)
            return ldm_fail(LDM_ENOMEM, "metrics: %zu points", cap);
        s->p = p;
        s->cap = cap;
    }
    s->p[s->n++] = (struct point){step, loss, line};
    return 0;
}

/* One line: 1 and *pt set for a point, 0 for a line to pass over silently (blank,
 * or a step trainerd skipped), LDM_EFORMAT (detail recorded) for a malformed one. */
static int parse_line(const char *path, size_t lineno, const char *text, size_t len,
                      struct point *pt)
{
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
        i++;
    if (i == len)
        return 0;
    json_error_t e;
    json_t *v = json_loadb(text, len, 0, &e);
    if (!v)
        return ldm_fail(LDM_EFORMAT, "%s:%zu: not JSON (%s)", path, lineno, e.text);
    const json_t *s = json_object_get(v, "step"), *l = json_object_get(v, "loss");
    int rc = 1;
    if (!json_is_integer(s) || !json_is_number(l))
        rc = ldm_fail(LDM_EFORMAT, "%s:%zu: no integer \"step\" and number \"loss\"", path,
                      lineno);
    else if (!isfinite(json_number_value(l)))
        rc = ldm_fail(LDM_EFORMAT, "%s:%zu: loss is not finite", path, lineno);
    else if (json_is_true(json_object_get(v, "skipped")))
        rc = 0;
    else
        *pt = (struct point){json_integer_value(s), json_number_value(l), lineno};
    json_decref(v);
    return rc;
}

/* Every point of the file; malformed lines are reported on stderr and skipped. */
static int read_points(const char *path, struct series *s)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return ldm_fail_errno(LDM_EIO, "%s: open", path);
    char *buf = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    int rc = 0;
    while (!rc && (len = getline(&buf, &cap, f)) >= 0) {
        struct point pt = {0};
        int r = parse_line(path, ++lineno, buf, (size_t)len, &pt);
        if (r < 0)
            fprintf(stderr, "ldmctl plot: %s; line skipped\n", ldm_errmsg());
        else if (r > 0)
            rc = series_add(s, pt.step, pt.loss, pt.line);
    }
    if (!rc && ferror(f))
        rc = ldm_fail_errno(LDM_EIO, "%s: read", path);
    free(buf);
    fclose(f);
    if (!rc && s->n == 0)
        rc = ldm_fail(LDM_EFORMAT, "%s: no line with a step and a finite loss", path);
    return rc;
}

static int cmp_point(const void *a, const void *b)
{
    const struct point *p = a, *q = b;
    if (p->step != q->step)
        return p->step < q->step ? -1 : 1;
    return p->line < q->line ? -1 : p->line > q->line;
}

/* Sort by step and keep the last line of each step. */
static void dedupe(struct series *s)
{
    qsort(s->p, s->n, sizeof *s->p, cmp_point);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (i + 1 < s->n && s->p[i + 1].step == s->p[i].step)
            continue;
        s->p[k++] = s->p[i];
    }
    s->n = k;
}

/* avg[i]: the mean of the last `window` losses up to point i (fewer at the start). */
static int moving_average(struct series *s, size_t window)
{
    s->avg = malloc(s->n * sizeof *s->avg);
    if (!s->avg)
        return ldm_fail(LDM_ENOMEM, "metrics: moving average of %zu points", s->n);
    double sum = 0;
    for (size_t i = 0; i < s->n; i++) {
        sum += s->p[i].loss;
        if (i >= window)
            sum -= s->p[i - window].loss;
        s->avg[i] = sum / (double)(i + 1 < window ? i + 1 : window);
    }
    return 0;
}

/* ---- drawing ------------------------------------------------------------------------ */

static void put(struct canvas *c, int x, int y, struct rgb col)
{
    if (x < c->cx0 || x > c->cx1 || y < c->cy0 || y > c->cy1)
        return;
    unsigned char *p = c->im.px + ((size_t)y * (size_t)c->im.w + (size_t)x) * 3;
    p[0] = col.r;
    p[1] = col.g;
    p[2] = col.b;
}

static void fill(struct canvas *c, int x, int y, int w, int h, struct rgb col)
{
    for (int j = y; j < y + h; j++)
        for (int i = x; i < x + w; i++)
            put(c, i, j, col);
}

static void clip(struct canvas *c, int x0, int y0, int x1, int y1)
{
    c->cx0 = x0;
    c->cy0 = y0;
    c->cx1 = x1;
    c->cy1 = y1;
}

/* A line `t` pixels thick (Bresenham, a t x t square at each step). */
static void line(struct canvas *c, int x0, int y0, int x1, int y1, int t, struct rgb col)
{
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy, o = (t - 1) / 2;
    for (;;) {
        fill(c, x0 - o, y0 - o, t, t, col);
        if (x0 == x1 && y0 == y1)
            break;
        int e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

static int text_width(const char *s, int scale)
{
    int n = (int)strlen(s);
    return n ? (n * FONT_ADVANCE - 1) * scale : 0;
}

/* Text with its top-left corner at (x, y). */
static void text(struct canvas *c, int x, int y, const char *s, int scale, struct rgb col)
{
    for (; *s; s++, x += FONT_ADVANCE * scale) {
        const unsigned char *g = font_glyph((unsigned char)*s);
        for (int r = 0; r < FONT_H; r++)
            for (int b = 0; b < FONT_W; b++)
                if (g[r] & (0x10 >> b))
                    fill(c, x + b * scale, y + r * scale, scale, scale, col);
    }
}

/* ---- axes ----------------------------------------------------------------------------- */

/* 1, 2 or 5 times a power of ten: the smallest spacing giving at most `max_ticks`
 * intervals over `span` (at least `min_step`). */
static double nice_step(double span, int max_ticks, double min_step)
{
    if (max_ticks < 1)
        max_ticks = 1;
    double raw = span / max_ticks;
    if (!(raw > 0))
        return min_step > 0 ? min_step : 1;
    static const double mult[] = {1, 2, 5, 10};
    double p = pow(10, floor(log10(raw))), step = 10 * p;
    for (int i = 0; i < 4; i++)
        if (mult[i] * p >= raw * (1 - 1e-9)) {
            step = mult[i] * p;
            break;
        }
    return step < min_step ? min_step : step;
}

/* Widen [lo, hi] outwards to multiples of `tick`. */
static void snap(double *lo, double *hi, double tick)
{
    *lo = floor(*lo / tick + 1e-9) * tick;
    *hi = ceil(*hi / tick - 1e-9) * tick;
    if (*hi <= *lo)
        *hi = *lo + tick;
}

/* A tick value with as many decimals as the spacing needs ("0.05", "200"). */
static void tick_label(char *buf, size_t size, double v, double tick)
{
    int dec = tick >= 1 ? 0 : (int)ceil(-log10(tick) - 1e-9);
    if (fabs(v) < tick * 1e-6)
        v = 0;
    if (fabs(v) >= 1e7 || (v != 0 && fabs(v) < 1e-6))
        snprintf(buf, size, "%.3g", v);
    else
        snprintf(buf, size, "%.*f", dec, v);
}

static double px_x(const struct frame *f, double step)
{
    return f->x0 + (step - f->xlo) / (f->xhi - f->xlo) * (f->x1 - f->x0);
}

static double px_y(const struct frame *f, double loss)
{
    return f->y1 - (loss - f->ylo) / (f->yhi - f->ylo) * (f->y1 - f->y0);
}

/* The plot area and axis ranges for a w x h image. */
static void layout(struct frame *f, const struct series *s, int w, int h)
{
    int sc = (w >= 1400 && h >= 840) ? 2 : 1, ch = (FONT_H + 1) * sc;
    f->scale = sc;
    f->y0 = 3 * ch + 14; /* legend and summary lines above (draw_legend) */
    f->y1 = h - 1 - (2 * ch + 18);
    double lo = s->p[0].loss, hi = lo;
    for (size_t i = 0; i < s->n; i++) {
        lo = fmin(lo, s->p[i].loss);
        hi = fmax(hi, s->p[i].loss);
    }
    if (hi - lo < 1e-12 * fmax(1, fabs(hi))) {
        lo -= fmax(0.5 * fabs(lo), 1e-3);
        hi += fmax(0.5 * fabs(hi), 1e-3);
    }
    f->ytick = nice_step(hi - lo, (f->y1 - f->y0) / (6 * ch), 0);
    snap(&lo, &hi, f->ytick);
    f->ylo = lo;
    f->yhi = hi;
    int label_w = 0;
    char buf[64];
    for (double v = lo; v <= hi + f->ytick * 1e-6; v += f->ytick) {
        tick_label(buf, sizeof buf, v, f->ytick);
        int tw = text_width(buf, sc);
        label_w = tw > label_w ? tw : label_w;
    }
    f->x0 = label_w + 6 * sc + 12;
    f->x1 = w - 1 - 20 * sc;
    double xlo = (double)s->p[0].step, xhi = (double)s->p[s->n - 1].step;
    if (xhi == xlo) { /* one point: in the middle */
        xlo -= 1;
        xhi += 1;
    }
    snprintf(buf, sizeof buf, "%.0f", fmax(fabs(xlo), fabs(xhi)));
    int per_label = text_width(buf, sc) + 24 * sc;
    f->xtick = nice_step(fmax(xhi - xlo, 1), (f->x1 - f->x0) / per_label, 1);
    snap(&xlo, &xhi, f->xtick);
    f->xlo = xlo;
    f->xhi = xhi;
}

static void draw_axes(struct canvas *c, const struct frame *f)
{
    int sc = f->scale, tk = 5 * sc;
    char buf[64];
    clip(c, 0, 0, c->im.w - 1, c->im.h - 1);
    for (double v = f->ylo; v <= f->yhi + f->ytick * 1e-6; v += f->ytick) {
        int y = (int)lround(px_y(f, v));
        line(c, f->x0, y, f->x1, y, 1, GRID);
        line(c, f->x0 - tk, y, f->x0, y, 1, BLACK);
        tick_label(buf, sizeof buf, v, f->ytick);
        text(c, f->x0 - tk - 4 - text_width(buf, sc), y - FONT_H * sc / 2, buf, sc, BLACK);
    }
    int last_end = -1000000;
    for (double v = f->xlo; v <= f->xhi + f->xtick * 1e-6; v += f->xtick) {
        int x = (int)lround(px_x(f, v));
        line(c, x, f->y0, x, f->y1, 1, GRID);
        line(c, x, f->y1, x, f->y1 + tk, 1, BLACK);
        tick_label(buf, sizeof buf, v, f->xtick);
        int tw = text_width(buf, sc), lx = x - tw / 2;
        if (lx > last_end + 4 * sc) {
            text(c, lx, f->y1 + tk + 4, buf, sc, BLACK);
            last_end = lx + tw;
        }
    }
    line(c, f->x0, f->y0, f->x0, f->y1, 1, BLACK);
    line(c, f->x0, f->y1, f->x1, f->y1, 1, BLACK);
    const char *xt = "step";
    text(c, (f->x0 + f->x1 - text_width(xt, sc)) / 2, f->y1 + tk + 4 + (FONT_H + 4) * sc, xt,
         sc, GREY);
}

static void draw_curve(struct canvas *c, const struct frame *f, const struct series *s,
                       const double *val, int thick, struct rgb col)
{
    clip(c, f->x0, f->y0, f->x1, f->y1);
    int px = 0, py = 0;
    for (size_t i = 0; i < s->n; i++) {
        int x = (int)lround(px_x(f, (double)s->p[i].step));
        int y = (int)lround(px_y(f, val ? val[i] : s->p[i].loss));
        if (i == 0 && s->n == 1)
            fill(c, x - 1, y - 1, 3, 3, col);
        if (i > 0)
            line(c, px, py, x, y, thick, col);
        px = x;
        py = y;
    }
}

/* Legend and a summary line above the plot area. */
static void draw_legend(struct canvas *c, const struct frame *f, const struct series *s,
                        size_t window)
{
    int sc = f->scale, y = 6, x = f->x0, sw = 18 * sc;
    char buf[128];
    clip(c, 0, 0, c->im.w - 1, c->im.h - 1);
    text(c, x, y, "loss", sc, BLACK);
    x += text_width("loss", sc) + 8 * sc;
    fill(c, x, y + 3 * sc, sw, 2 * sc, RAW);
    x += sw + 16 * sc;
    snprintf(buf, sizeof buf, "moving average (%zu)", window);
    text(c, x, y, buf, sc, BLACK);
    x += text_width(buf, sc) + 8 * sc;
    fill(c, x, y + 3 * sc, sw, 2 * sc, AVG);
    snprintf(buf, sizeof buf, "steps %lld-%lld  last avg %.4g", (long long)s->p[0].step,
             (long long)s->p[s->n - 1].step, s->avg[s->n - 1]);
    text(c, f->x0, y + (FONT_H + 4) * sc, buf, sc, GREY);
}

static int render(const struct series *s, size_t window, int w, int h, struct canvas *c)
{
    int rc = ldm_image_alloc(&c->im, w, h, 3);
    if (rc)
        return rc;
    clip(c, 0, 0, w - 1, h - 1);
    fill(c, 0, 0, w, h, WHITE);
    struct frame f;
    layout(&f, s, w, h);
    draw_axes(c, &f);
    draw_curve(c, &f, s, NULL, 1, RAW);
    draw_curve(c, &f, s, s->avg, 2 * f.scale, AVG);
    draw_legend(c, &f, s, window);
    return 0;
}

/* ---- output ----------------------------------------------------------------------------- */

/* ---- the command ------------------------------------------------------------------------ */

struct plot_args {
    const char *in, *out;
    int width, height;
    long window; /* 0: a twentieth of the points */
};

static int side_arg(const char *name, const char *v, int *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x < SIDE_MIN || x > SIDE_MAX) {
        fprintf(stderr,
                "ldmctl plot: --%s must be a whole number of pixels in %d..%d, not \"%s\"\n",
                name, SIDE_MIN, SIDE_MAX, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int plot_usage(void)
{
    fputs("usage: ldmctl plot METRICS.jsonl OUT.png [--width W] [--height H] [--window N]\n",
          stderr);
    return LDMCTL_EXIT_USAGE;
}

static int parse_plot_args(int argc, char **argv, struct plot_args *a)
{
    static const struct option longs[] = {
        {"width", required_argument, 0, 'w'},  {"height", required_argument, 0, 'h'},
        {"window", required_argument, 0, 'n'}, {0, 0, 0, 0},
    };
    *a = (struct plot_args){.width = 800, .height = 480};
    int c;
    char *end;
    optind = 0;
    while ((c = getopt_long(argc, argv, "w:h:n:", longs, NULL)) != -1) {
        if (c == 'w' && side_arg("width", optarg, &a->width) == 0)
            continue;
        if (c == 'h' && side_arg("height", optarg, &a->height) == 0)
            continue;
        if (c == 'n' && (a->window = strtol(optarg, &end, 10)) >= 1 && *end == '\0')
            continue;
        if (c == 'n')
            fprintf(stderr, "ldmctl plot: --window must be a whole number >= 1\n");
        return -1;
    }
    if (argc - optind != 2)
        return -1;
    a->in = argv[optind];
    a->out = argv[optind + 1];
    return 0;
}

int ldmctl_plot(int argc, char **argv)
{
    struct plot_args a;
    if (parse_plot_args(argc, argv, &a) != 0)
        return plot_usage();
    struct series s = {0};
    struct canvas c = {0};
    int rc = read_points(a.in, &s);
    if (!rc)
        dedupe(&s);
    size_t window = a.window > 0 ? (size_t)a.window : (s.n + 10) / 20;
    window = window ? window : 1;
    if (!rc)
        rc = moving_average(&s, window);
    if (!rc)
        rc = render(&s, window, a.width, a.height, &c);
    if (!rc)
        rc = ldm_image_write_png(a.out, &c.im);
    if (rc)
        fprintf(stderr, "ldmctl plot: %s\n", ldm_errmsg());
    else
        printf("%s: %zu points (steps %lld..%lld), last loss %.4g, moving average (%zu) %.4g\n",
               a.out, s.n, (long long)s.p[0].step, (long long)s.p[s.n - 1].step,
               s.p[s.n - 1].loss, window, s.avg[s.n - 1]);
    ldm_image_free(&c.im);
    free(s.p);
    free(s.avg);
    return rc ? LDMCTL_EXIT_ERROR : 0;
}
