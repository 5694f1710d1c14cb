/* main.c — bench-encoder: encoderd's encode path (encoderd_models_open + encoderd_encode: the
 * VAE latent distribution and the CLIP text states of a batch, into fp16 records) on the CPU
 * backend against diffusers' AutoencoderKL.encode and transformers' CLIPTextModel on PyTorch,
 * same weights, same batch, same threads; prints samples/s of both, their ratio, and how far
 * apart the two sides' outputs are.
 *
 *   bench-encoder [--threads N] [--reps K] [--python PATH] [--script FILE] [--mktiny PATH]
 *                 [--only tiny|mid]
 * Cases: tiny, the SD-1 folder of mktiny (VAE 32/64, CLIP text 32 wide) with 8 images of
 * 64 px; mid, VAE 128/256/512/512 and CLIP text 768 wide with 12 layers (random weights
 * written by the peer, FILE make-mid) with 2 images of 256 px. 77 token ids each. The peer is
 * FILE (bench/encoder/peer.py) run by PATH (a python with diffusers 0.26.3 and transformers)
 * as a child process that keeps its models loaded: the two sides take turns, one batch each,
 * K rounds after a warm-up, so that both see the same load of a shared machine; each side's
 * figure is its median.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "encoderd/encode.h"
#include "err.h"
#include "fsutil.h"
#include "nn/tensor.h"
#include "record.h"

struct opts {
    int threads, reps;
    const char *python, *script, *mktiny, *only;
};

/* One case: a model folder, the batch's sizes, and a work folder for the batch files. */
struct bcase {
    const char *name;
    char dir[4096], work[4096];
    int64_t N, H, W, L;
};

/* The batch both sides encode: pixels (N, H, W, 3) and token ids (N, L). */
struct batch_in {
    uint8_t *px;
    uint32_t *ids;
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A reproducible 64-bit hash of element i of stream s (SplitMix64). */
static uint64_t hash(uint64_t s, uint64_t i)
{
    uint64_t x = s * 0x9E3779B97F4A7C15ull + i + 1;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static int write_file(const char *dir, const char *name, const void *data, size_t bytes)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f)
        return ldm_fail_errno(LDM_EIO, "%s: cannot create", p);
    size_t w = fwrite(data, 1, bytes, f);
    if (fclose(f) || w != bytes)
        return ldm_fail(LDM_EIO, "%s: cannot write %zu bytes", p, bytes);
    return 0;
}

/* Images of smooth gradients with noise; captions of CLIP's framing: start id, 4..L-3 word
 * ids, end id, then end ids as padding (SD-1's tokenizer pads with the end id). */
static int make_batch(const struct bcase *c, struct batch_in *b)
{
    size_t npx = (size_t)(c->N * c->H * c->W * 3), nid = (size_t)(c->N * c->L);
    b->px = malloc(npx);
    b->ids = malloc(nid * sizeof *b->ids);
    if (!b->px || !b->ids)
        return ldm_fail(LDM_ENOMEM, "%s: batch", c->name);
    for (size_t i = 0; i < npx; i++) {
        size_t x = i / 3 % (size_t)c->W, y = i / 3 / (size_t)c->W % (size_t)c->H;
        b->px[i] = (uint8_t)((x * 97 + y * 61 + i % 3 * 50) % 200 + hash(1, i) % 56);
    }
    for (int64_t n = 0; n < c->N; n++) {
        uint32_t *row = b->ids + n * c->L;
        int64_t words = 4 + (int64_t)(hash(2, (uint64_t)n) % (uint64_t)(c->L - 6));
        for (int64_t j = 0; j < c->L; j++) {
            uint32_t word = 300 + (uint32_t)(hash(3, (uint64_t)(n * c->L + j)) % 48000);
            row[j] = j == 0 ? 49406 : j <= words ? word : 49407;
        }
    }
    int32_t *ids32 = malloc(nid * sizeof *ids32);
    if (!ids32)
        return ldm_fail(LDM_ENOMEM, "%s: batch", c->name);
    for (size_t i = 0; i < nid; i++)
        ids32[i] = (int32_t)b->ids[i];
    int rc = write_file(c->work, "pixels.u8", b->px, npx);
    if (!rc)
        rc = write_file(c->work, "ids.i32", ids32, nid * sizeof *ids32);
    free(ids32);
    return rc;
}

static void sort(double *t, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double k = t[j];
            t[j] = t[j - 1];
            t[j - 1] = k;
        }
}

static void free_recs(void **recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(recs[i]);
        recs[i] = NULL;
    }
}

/* The samples encoderd would receive for the batch (one layout shared by all). */
static int make_items(const struct bcase *c, const struct batch_in *b, Ldmpipe__Sample *s,
                      Ldmpipe__ImageLayout *im, struct encoderd_item *it)
{
    ldmpipe__image_layout__init(im);
    im->height = (uint32_t)c->H, im->width = (uint32_t)c->W, im->channels = 3;
    im->dtype = LDMPIPE__DTYPE__DTYPE_UINT8;
    for (int64_t i = 0; i < c->N; i++) {
        ldmpipe__sample__init(&s[i]);
        s[i].shard = (ProtobufCBinaryData){5, (uint8_t *)"bench"};
        s[i].key = (ProtobufCBinaryData){5, (uint8_t *)"batch"};
        s[i].target_height = s[i].original_height = (uint32_t)c->H;
        s[i].target_width = s[i].original_width = (uint32_t)c->W;
        s[i].image = im;
        s[i].input_ids = b->ids + i * c->L;
        s[i].n_input_ids = (size_t)c->L;
        it[i] = (struct encoderd_item){&s[i], b->px + i * c->H * c->W * 3, NULL};
    }
    return 0;
}

/* The peer: peer.py serve, answering one request per line over a pipe. */
struct peer {
    pid_t pid;
    FILE *to, *from;
};

static void peer_exec(const struct bcase *c, const struct opts *o, int in, int out)
{
    char a[6][24];
    int64_t v[5] = {c->N, c->H, c->W, c->L, o->threads};
    for (int i = 0; i < 5; i++)
        snprintf(a[i], sizeof a[i], "%lld", (long long)v[i]);
    dup2(in, 0);
    dup2(out, 1);
    setenv("OMP_NUM_THREADS", a[4], 1);
    setenv("OPENBLAS_NUM_THREADS", a[4], 1);
    setenv("MKL_NUM_THREADS", a[4], 1);
    execlp(o->python, o->python, o->script, "serve", c->dir, a[4], a[0], a[1], a[2], a[3],
           c->work, (char *)NULL);
    perror(o->python);
    _exit(127);
}

static int peer_start(const struct bcase *c, const struct opts *o, struct peer *p)
{
    int in[2], out[2];
    if (pipe(in))
        return ldm_fail_errno(LDM_EIO, "pipe");
    if (pipe(out)) {
        close(in[0]), close(in[1]);
        return ldm_fail_errno(LDM_EIO, "pipe");
    }
    p->pid = fork();
    if (p->pid == 0) {
        close(in[1]), close(out[0]);
        peer_exec(c, o, in[0], out[1]);
    }
    close(in[0]), close(out[1]);
    p->to = fdopen(in[1], "w");
    p->from = fdopen(out[0], "r");
    if (p->pid < 0 || !p->to || !p->from)
        return ldm_fail_errno(LDM_EIO, "starting the peer %s", o->script);
    return 0;
}

/* Send one request; read back "encode_s S" (sec given) or "saved". */
static int peer_ask(struct peer *p, const char *req, double *sec)
{
    char line[256];
    if (fprintf(p->to, "%s\n", req) < 0 || fflush(p->to) || !fgets(line, sizeof line, p->from))
        return ldm_fail(LDM_EIO, "the peer did not answer '%s'", req);
    if (sec ? sscanf(line, "encode_s %lf", sec) == 1 : !strncmp(line, "saved", 5))
        return 0;
    return ldm_fail(LDM_EIO, "the peer answered '%.100s' to '%s'", line, req);
}

/* Close the pipes (the peer exits at the end of its input) and reap it. */
static int peer_stop(struct peer *p)
{
    if (p->to)
        fclose(p->to);
    if (p->from)
        fclose(p->from);
    int st = 0;
    if (p->pid > 0 && waitpid(p->pid, &st, 0) < 0)
        return ldm_fail_errno(LDM_EIO, "waiting for the peer");
    return st == 0 ? 0 : ldm_fail(LDM_EIO, "the peer exited with status %d", st);
}

/* Rounds of one batch on each side after one warm-up each; medians into ours and peer.
 * The last round's records stay in recs, and the peer saves its last outputs. */
static int rounds(const struct bcase *c, const struct opts *o, struct encoderd_models *m,
                  const struct encoderd_item *it, struct peer *p, double *ours, double *peer,
                  void **recs, size_t *lens)
{
    double to[65], tp[65];
    int rc = 0;
    for (int r = 0; !rc && r <= o->reps; r++) {
        free_recs(recs, (size_t)c->N);
        double t0 = now_s();
        rc = encoderd_encode(m, it, (size_t)c->N, recs, lens);
        to[r] = now_s() - t0;
        if (!rc)
            rc = peer_ask(p, "encode", &tp[r]);
    }
    if (!rc)
        rc = peer_ask(p, "save", NULL);
    if (!rc) {
        sort(to + 1, o->reps);
        sort(tp + 1, o->reps);
        *ours = to[1 + o->reps / 2];
        *peer = tp[1 + o->reps / 2];
    }
    return rc;
}

/* Both sides on the case's batch: seconds per batch and the last outputs. */
static int time_both(const struct bcase *c, const struct opts *o, const struct batch_in *b,
                     double *ours, double *peer, void **recs, size_t *lens)
{
    struct encoderd_model_opts mo = {c->dir, "cpu", o->threads, 0, 0, 0};
    struct encoderd_models *m = NULL;
    struct peer p = {0};
    Ldmpipe__Sample *s = calloc((size_t)c->N, sizeof *s);
    struct encoderd_item *it = calloc((size_t)c->N, sizeof *it);
    Ldmpipe__ImageLayout im;
    int rc = s && it ? make_items(c, b, s, &im, it) : ldm_fail(LDM_ENOMEM, "samples");
    if (!rc)
        rc = peer_start(c, o, &p);
    if (!rc)
        rc = encoderd_models_open(&m, &mo);
    if (!rc)
        rc = rounds(c, o, m, it, &p, ours, peer, recs, lens);
    int st = peer_stop(&p);
    if (!rc)
        rc = st;
    encoderd_models_free(&m);
    free(s);
    free(it);
    return rc;
}

/* The record sections compared with the peer's outputs. */
enum { SEC_MEAN, SEC_LOGVAR, SEC_TEXT };

static const void *section(const struct ldm_record *r, int which, size_t *n)
{
    *n = (which == SEC_TEXT ? r->size.text : r->size.latent) / 2;
    return which == SEC_MEAN ? r->sec.mean : which == SEC_LOGVAR ? r->sec.logvar : r->sec.text;
}

/* max |ours − peer| / max |peer| of one output over the batch; the peer's values
 * are in work/peer_NAME.f32, one sample after the other. */
static int rel_diff(const struct bcase *c, const char *name, int which, void *const *recs,
                    const size_t *lens, double *out)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/peer_%s.f32", c->work, name);
    struct ldm_map f = {0};
    int rc = ldm_map_file(p, &f);
    double num = 0, den = 0;
    size_t off = 0, n = 0;
    for (int64_t i = 0; !rc && i < c->N; i++) {
        struct ldm_record r;
        rc = ldm_record_parse(recs[i], lens[i], "bench record", &r);
        const void *sec = rc ? NULL : section(&r, which, &n);
        if (!rc && (off + n) * sizeof(float) > f.len)
            rc = ldm_fail(LDM_EFORMAT, "%s: %zu bytes, fewer than the batch's outputs", p, f.len);
        for (size_t k = 0; !rc && k < n; k++) {
            float a = ldm_f16_to_f32(ldm_record_f16(sec, k)), b;
            memcpy(&b, (const char *)f.data + (off + k) * sizeof b, sizeof b);
            num = fmax(num, fabs((double)a - b));
            den = fmax(den, fabs((double)b));
        }
        off += n;
    }
    if (!rc && off * sizeof(float) != f.len)
        rc = ldm_fail(LDM_EFORMAT, "%s: %zu bytes, the batch's outputs are %zu", p, f.len,
                      off * sizeof(float));
    ldm_unmap(&f);
    *out = den > 0 ? num / den : num;
    return rc;
}

static int run_cmd(const char *cmd)
{
    int st = system(cmd);
    return st == 0 ? 0 : ldm_fail(LDM_EIO, "'%s' failed (status %d)", cmd, st);
}

/* The case's model folder: mktiny's SD-1 folder, or the peer's mid-size one. */
static int make_model(const struct bcase *c, const struct opts *o)
{
    char cmd[16384];
    if (!strcmp(c->name, "tiny-sd1"))
        snprintf(cmd, sizeof cmd, "%s --variant sd1 --out %s --seed 3 >/dev/null", o->mktiny,
                 c->dir);
    else
        snprintf(cmd, sizeof cmd, "%s %s make-mid %s", o->python, o->script, c->dir);
    return run_cmd(cmd);
}

static int run_case(const struct bcase *c, const struct opts *o)
{
    struct batch_in b = {0};
    void **recs = calloc((size_t)c->N, sizeof *recs);
    size_t *lens = calloc((size_t)c->N, sizeof *lens);
    double ours = 0, peer = 0, d[3] = {0};
    int rc = recs && lens ? make_model(c, o) : ldm_fail(LDM_ENOMEM, "records");
    if (!rc)
        rc = make_batch(c, &b);
    if (!rc)
        rc = time_both(c, o, &b, &ours, &peer, recs, lens);
    if (!rc)
        rc = rel_diff(c, "mean", SEC_MEAN, recs, lens, &d[0]);
    if (!rc)
        rc = rel_diff(c, "logvar", SEC_LOGVAR, recs, lens, &d[1]);
    if (!rc)
        rc = rel_diff(c, "text", SEC_TEXT, recs, lens, &d[2]);
    if (!rc)
        printf("encoder %-8s N=%lld %lldx%lld L=%lld, %d threads: ldmpipe %9.3f samples/s, "
               "PyTorch %9.3f samples/s, ratio ldmpipe/PyTorch %.2f (max rel diff: mean %.1e, "
               "logvar %.1e, text %.1e)\n",
               c->name, (long long)c->N, (long long)c->H, (long long)c->W, (long long)c->L,
               o->threads, (double)c->N / ours, (double)c->N / peer, peer / ours, d[0], d[1],
               d[2]);
    fflush(stdout);
    if (recs)
        free_recs(recs, (size_t)c->N);
    free(recs);
    free(lens);
    free(b.px);
    free(b.ids);
    return rc;
}

static int parse(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return ldm_fail(LDM_EINVAL, "%s: unknown option, or no value after it", argv[i]);
        if (!strcmp(argv[i], "--threads")) o->threads = atoi(v);
        else if (!strcmp(argv[i], "--reps")) o->reps = atoi(v);
        else if (!strcmp(argv[i], "--python")) o->python = v;
        else if (!strcmp(argv[i], "--script")) o->script = v;
        else if (!strcmp(argv[i], "--mktiny")) o->mktiny = v;
        else if (!strcmp(argv[i], "--only")) o->only = v;
        else return ldm_fail(LDM_EINVAL, "unknown option %s", argv[i]);
    }
    if (o->threads <= 0)
        o->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (o->reps < 1 || o->reps > 64)
        return ldm_fail(LDM_EINVAL, "--reps must be in 1..64");
    if (o->only && strcmp(o->only, "tiny") && strcmp(o->only, "mid"))
        return ldm_fail(LDM_EINVAL, "--only: '%s' is not tiny or mid", o->only);
    return 0;
}

static void case_dirs(struct bcase *c, const char *tmp, const char *sub)
{
    snprintf(c->dir, sizeof c->dir, "%s/%s", tmp, sub);
    snprintf(c->work, sizeof c->work, "%s", tmp);
}

int main(int argc, char **argv)
{
    struct opts o = {0, 3, "build/venv/bin/python", "bench/encoder/peer.py", "build/bin/mktiny",
                     NULL};
    int rc = parse(argc, argv, &o);
    if (rc) {
        fprintf(stderr, "bench-encoder: %s\n", ldm_errmsg());
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* a peer that died is an error reply, not a signal */
    char tmp[] = "/tmp/bench-encoder.XXXXXX";
    if (!mkdtemp(tmp)) {
        perror("bench-encoder: mkdtemp");
        return 1;
    }
    struct bcase tiny = {.name = "tiny-sd1", .N = 8, .H = 64, .W = 64, .L = 77};
    struct bcase mid = {.name = "mid", .N = 2, .H = 256, .W = 256, .L = 77};
    case_dirs(&tiny, tmp, "tiny");
    case_dirs(&mid, tmp, "mid");
    if (!o.only || !strcmp(o.only, "tiny"))
        rc = run_case(&tiny, &o);
    if (!rc && (!o.only || !strcmp(o.only, "mid")))
        rc = run_case(&mid, &o);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd))
        fprintf(stderr, "bench-encoder: could not remove %s\n", tmp);
    if (rc) {
        fprintf(stderr, "bench-encoder: %s\n", ldm_errmsg());
        return 1;
    }
    return 0;
}
