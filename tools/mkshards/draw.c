/* draw.c — synthetic pictures: coloured shapes on one- or two-tone backgrounds, anti-aliased. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mkshards.h"

const char *const mk_shape_names[] = {"circle", "square", "triangle", "diamond",
                                      "star",   "ring",   "cross",    "hexagon"};
const int mk_n_shapes = 8;

const char *const mk_color_names[] = {"red",  "green", "blue",  "yellow", "orange", "purple",
                                      "pink", "cyan",  "white", "black",  "gray",   "brown"};
const int mk_n_colors = 12;

static const unsigned char palette[12][3] = {
    {220, 30, 30},   {40, 170, 60},  {40, 70, 220},   {240, 220, 40},
    {245, 140, 20},  {140, 50, 180}, {240, 120, 180}, {40, 200, 220},
    {245, 245, 245}, {20, 20, 20},   {128, 128, 128}, {130, 80, 40},
};

enum { CIRCLE, SQUARE, TRIANGLE, DIAMOND, STAR, RING, CROSS, HEXAGON };

#define PI_F 3.14159265f

uint64_t mk_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static float uniform(uint64_t *rng)
{
    return (float)(mk_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
}

/* A colour index other than a and b (b < 0: none). */
static int other_color(uint64_t *rng, int a, int b)
{
    for (;;) {
        int c = (int)(mk_rng_next(rng) % (uint64_t)mk_n_colors);
        if (c != a && c != b)
            return c;
    }
}

void mk_scene_random(struct mk_scene *sc, int size, uint64_t *rng)
{
    sc->shape = (int)(mk_rng_next(rng) % (uint64_t)mk_n_shapes);
    sc->color = (int)(mk_rng_next(rng) % (uint64_t)mk_n_colors);
    sc->bg = other_color(rng, sc->color, -1);
    sc->bg2 = uniform(rng) < 0.4f ? other_color(rng, sc->color, sc->bg) : -1;
    sc->split = (int)(mk_rng_next(rng) % 3);
    sc->r = (float)size * (0.18f + 0.2f * uniform(rng));
    float room = (float)size - 2.0f * sc->r - 2.0f;
    sc->cx = sc->r + 1.0f + room * uniform(rng);
    sc->cy = sc->r + 1.0f + room * uniform(rng);
    sc->rot = sc->shape == TRIANGLE ? 0.6f * (uniform(rng) - 0.5f) : 2.0f * PI_F * uniform(rng);
}

/* "a" or "an" before a word. */
static const char *article(const char *word)
{
    return strchr("aeiou", word[0]) ? "an" : "a";
}

void mk_scene_caption(const struct mk_scene *sc, char *buf, size_t size)
{
    const char *c = mk_color_names[sc->color], *b = mk_color_names[sc->bg];
    if (sc->bg2 < 0)
        snprintf(buf, size, "%s %s %s on %s %s background", article(c), c,
                 mk_shape_names[sc->shape], article(b), b);
    else
        snprintf(buf, size, "%s %s %s on %s %s and %s background", article(c), c,
                 mk_shape_names[sc->shape], article(b), b, mk_color_names[sc->bg2]);
}

/* ---- geometry -------------------------------------------------------------------------- */

struct geo {
    int kind;
    float r;
    int n; /* polygon vertices */
    float vx[10], vy[10];
};

/* A regular polygon (or a star, alternating radii) around the origin. */
static void polygon(struct geo *g, int n, float r_out, float r_in, float rot)
{
    g->n = n;
    for (int i = 0; i < n; i++) {
        float a = rot - PI_F / 2 + 2.0f * PI_F * (float)i / (float)n;
        float r = (i % 2 && r_in > 0) ? r_in : r_out;
        g->vx[i] = r * cosf(a);
        g->vy[i] = r * sinf(a);
    }
}

static void geo_of(const struct mk_scene *sc, struct geo *g)
{
    g->kind = sc->shape;
    g->r = sc->r;
    g->n = 0;
    if (sc->shape == TRIANGLE)
        polygon(g, 3, sc->r, 0, sc->rot);
    else if (sc->shape == DIAMOND)
        polygon(g, 4, sc->r, 0, 0);
    else if (sc->shape == STAR)
        polygon(g, 10, sc->r, sc->r * 0.45f, sc->rot);
    else if (sc->shape == HEXAGON)
        polygon(g, 6, sc->r, 0, sc->rot);
}

/* min/max without libm calls (no NaN can occur here) */
static float minf(float a, float b)
{
    return a < b ? a : b;
}

static float maxf(float a, float b)
{
    return a > b ? a : b;
}

static float clampf(float v, float lo, float hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Signed distance to an axis-aligned box of half sizes bx, by. */
static float sd_box(float px, float py, float bx, float by)
{
    float qx = fabsf(px) - bx, qy = fabsf(py) - by;
    float ox = maxf(qx, 0.0f), oy = maxf(qy, 0.0f);
    return sqrtf(ox * ox + oy * oy) + minf(maxf(qx, qy), 0.0f);
}

/* Signed distance to a polygon: nearest edge, sign by crossings. */
static float sd_polygon(const struct geo *g, float px, float py)
{
    float best = 1e30f;
    int inside = 0;
    for (int i = 0, j = g->n - 1; i < g->n; j = i++) {
        float ex = g->vx[j] - g->vx[i], ey = g->vy[j] - g->vy[i];
        float wx = px - g->vx[i], wy = py - g->vy[i];
        float t = clampf((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0f, 1.0f);
        float dx = wx - ex * t, dy = wy - ey * t;
        best = minf(best, dx * dx + dy * dy);
        if ((g->vy[i] > py) != (g->vy[j] > py) && px < ex * (py - g->vy[i]) / ey + g->vx[i])
            inside = !inside;
    }
    return inside ? -sqrtf(best) : sqrtf(best);
}

/* Signed distance (pixels) from the shape's edge; negative inside. */
static float sdf(const struct geo *g, float px, float py)
{
    float r = g->r;
    switch (g->kind) {
    case CIRCLE: return sqrtf(px * px + py * py) - r;
    case SQUARE: return sd_box(px, py, r * 0.8f, r * 0.8f);
    case RING: return fabsf(sqrtf(px * px + py * py) - r * 0.72f) - r * 0.28f;
    case CROSS: return minf(sd_box(px, py, r, r * 0.3f), sd_box(px, py, r * 0.3f, r));
    default: return sd_polygon(g, px, py);
    }
}

/* ---- pixels ------------------------------------------------------------------------------ */

/* The background's share of the second tone at a pixel centre (0..1). */
static float second_tone(const struct mk_scene *sc, int size, float x, float y, int aa)
{
    if (sc->bg2 < 0)
        return 0.0f;
    float h = (float)size / 2.0f;
    float s = sc->split == 0 ? x - h : sc->split == 1 ? y - h : (x - y) * 0.70710678f;
    return aa ? clampf(0.5f + s, 0.0f, 1.0f) : (s > 0.0f ? 1.0f : 0.0f);
}

void mk_scene_draw(const struct mk_scene *sc, int size, int aa, unsigned char *rgb)
{
    struct geo g;
    geo_of(sc, &g);
    const unsigned char *fg = palette[sc->color], *b1 = palette[sc->bg];
    const unsigned char *b2 = palette[sc->bg2 < 0 ? sc->bg : sc->bg2];
    float reach = sc->r * 1.14f + 1.0f; /* every shape lies within 1.14 r (square corners) */
    for (int y = 0; y < size; y++) {
        float py = (float)y + 0.5f - sc->cy;
        for (int x = 0; x < size; x++) {
            float px = (float)x + 0.5f - sc->cx, cover = 0.0f;
            if (px * px + py * py <= reach * reach) {
                float d = sdf(&g, px, py);
                cover = aa ? clampf(0.5f - d, 0.0f, 1.0f) : (d <= 0.0f ? 1.0f : 0.0f);
            }
            float t = second_tone(sc, size, (float)x + 0.5f, (float)y + 0.5f, aa);
            unsigned char *o = rgb + ((size_t)y * (size_t)size + (size_t)x) * 3;
            for (int c = 0; c < 3; c++) {
                float bg = (float)b1[c] + ((float)b2[c] - (float)b1[c]) * t;
                o[c] = (unsigned char)(bg + ((float)fg[c] - bg) * cover + 0.5f);
            }
        }
    }
}

void mk_scene_draw_edges(const struct mk_scene *sc, int size, unsigned char *rgb)
{
    struct geo g;
    geo_of(sc, &g);
    float reach = sc->r * 1.14f + 2.0f;
    for (int y = 0; y < size; y++) {
        float py = (float)y + 0.5f - sc->cy;
        for (int x = 0; x < size; x++) {
            float px = (float)x + 0.5f - sc->cx, v = 0.0f;
            if (px * px + py * py <= reach * reach)
                v = clampf(1.25f - fabsf(sdf(&g, px, py)), 0.0f, 1.0f);
            unsigned char *o = rgb + ((size_t)y * (size_t)size + (size_t)x) * 3;
            o[0] = o[1] = o[2] = (unsigned char)(v * 255.0f + 0.5f);
        }
    }
}
