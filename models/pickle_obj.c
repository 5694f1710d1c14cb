/* pickle_obj.c — the few objects a state dict may build: OrderedDict, storages and tensors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "pickle_int.h"

static const struct {
    const char *mod, *name;
    int glob, dtype;
} allowed[] = {
    {"collections", "OrderedDict", PK_G_ODICT, -1},
    {"torch._utils", "_rebuild_tensor_v2", PK_G_REBUILD_V2, -1},
    {"torch._utils", "_rebuild_parameter", PK_G_PARAMETER, -1},
    {"torch", "FloatStorage", PK_G_STORAGE, LDM_DT_F32},
    {"torch", "DoubleStorage", PK_G_STORAGE, LDM_DT_F64},
    {"torch", "HalfStorage", PK_G_STORAGE, LDM_DT_F16},
    {"torch", "BFloat16Storage", PK_G_STORAGE, LDM_DT_BF16},
    {"torch", "LongStorage", PK_G_STORAGE, LDM_DT_I64},
    {"torch", "IntStorage", PK_G_STORAGE, LDM_DT_I32},
    {"torch", "ShortStorage", PK_G_STORAGE, LDM_DT_I16},
    {"torch", "CharStorage", PK_G_STORAGE, LDM_DT_I8},
    {"torch", "ByteStorage", PK_G_STORAGE, LDM_DT_U8},
    {"torch", "BoolStorage", PK_G_STORAGE, LDM_DT_BOOL},
};

static int bad(const struct pk_vm *vm, const char *what)
{
    return ldm_fail(LDM_EFORMAT, "%s: %s at byte %zu", vm->label, what, vm->pos);
}

/* Copy at most 80 bytes of s, printable ASCII only, for an error detail. */
static void printable(char *out, size_t size, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < size && i < 80; i++)
        out[k++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[k] = 0;
}

static int is(const char *s, size_t n, const char *want)
{
    return strlen(want) == n && memcmp(s, want, n) == 0;
}

int pk_op_global(struct pk_vm *vm, const char *mod, size_t mlen, const char *name, size_t nlen)
{
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        if (!is(mod, mlen, allowed[i].mod) || !is(name, nlen, allowed[i].name))
            continue;
        uint32_t v;
        int rc = pk_push_new(vm, PK_GLOBAL, &v);
        if (rc == 0) {
            vm->vals[v].i = allowed[i].glob;
            vm->vals[v].dtype = allowed[i].dtype;
        }
        return rc;
    }
    char m[96], n[96];
    printable(m, sizeof m, mod, mlen);
    printable(n, sizeof n, name, nlen);
    return ldm_fail(LDM_EDENIED, "%s: refused global '%s.%s' at byte %zu", vm->label, m, n,
                    vm->at);
}

/* Tuple `v` of ints, each >= 0, into out[]; at most LDM_MAXDIM. */
static int int_tuple(struct pk_vm *vm, uint32_t v, int64_t *out, int *n)
{
    const struct pk_value *t = &vm->vals[v];
    if (t->kind != PK_TUPLE)
        return bad(vm, "tensor size or stride is not a tuple");
    if (t->n > LDM_MAXDIM)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: tensor with %zu dimensions (limit %d) at byte %zu",
                        vm->label, t->n, LDM_MAXDIM, vm->at);
    for (size_t i = 0; i < t->n; i++) {
        const struct pk_value *e = &vm->vals[t->items[i]];
        if (e->kind != PK_INT || e->i < 0)
            return bad(vm, "tensor size or stride is not a tuple of non-negative ints");
        out[i] = e->i;
    }
    *n = (int)t->n;
    return 0;
}

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]). */
static int rebuild_tensor(struct pk_vm *vm, uint32_t args)
{
    const struct pk_value *a = &vm->vals[args];
    if (a->n < 6 || a->n > 7)
        return bad(vm, "_rebuild_tensor_v2 with a wrong number of arguments");
    const struct pk_value *st = &vm->vals[a->items[0]], *off = &vm->vals[a->items[1]];
    if (st->kind != PK_STORAGE || off->kind != PK_INT || off->i < 0)
        return bad(vm, "_rebuild_tensor_v2 without a storage and an offset");
    struct pk_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", vm->label);
    t->storage = (uint32_t)st->i;
    t->offset = off->i;
    int nstride = 0;
    uint32_t sz = a->items[2], sd = a->items[3], v;
    int rc = int_tuple(vm, sz, t->shape, &t->ndim);
    if (rc == 0)
        rc = int_tuple(vm, sd, t->stride, &nstride);
    if (rc == 0 && nstride != t->ndim)
        rc = bad(vm, "tensor size and stride of different lengths");
    if (rc == 0)
        rc = pk_push_new(vm, PK_TENSOR, &v);
    if (rc) {
        free(t);
        return rc;
    }
    vm->vals[v].t = t;
    return 0;
}

int pk_op_reduce(struct pk_vm *vm)
{
    uint32_t fn, args;
    int rc = pk_pop(vm, &args);
    if (rc || (rc = pk_pop(vm, &fn)))
        return rc;
    const struct pk_value *f = &vm->vals[fn], *a = &vm->vals[args];
    if (f->kind != PK_GLOBAL || a->kind != PK_TUPLE)
        return bad(vm, "REDUCE of a value that is not an allowed callable with a tuple");
    switch (f->i) {
    case PK_G_ODICT:
        if (a->n != 0)
            return bad(vm, "OrderedDict called with arguments");
        return pk_push_new(vm, PK_DICT, NULL);
    case PK_G_REBUILD_V2:
        return rebuild_tensor(vm, args);
    case PK_G_PARAMETER:
        if (a->n < 1 || vm->vals[a->items[0]].kind != PK_TENSOR)
            return bad(vm, "_rebuild_parameter without a tensor");
        return pk_push(vm, a->items[0]);
    default:
        return bad(vm, "a storage type called");
    }
}

/* BUILD on an OrderedDict sets attributes (a state dict's _metadata): ignored. */
int pk_op_build(struct pk_vm *vm)
{
    uint32_t state, obj;
    int rc = pk_pop(vm, &state);
    if (rc || (rc = pk_pop(vm, &obj)))
        return rc;
    if (vm->vals[obj].kind != PK_DICT)
        return bad(vm, "BUILD on a value that is not an OrderedDict");
    return pk_push(vm, obj);
}

/* The table entry for `key`, added when new; its dtype and size must agree. */
static int storage_entry(struct pk_vm *vm, const char *key, int dtype, int64_t numel, size_t *idx)
{
    struct pk_storages *s = vm->st;
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->v[i].key, key) != 0)
            continue;
        if (s->v[i].dtype != dtype || s->v[i].numel != (uint64_t)numel)
            return bad(vm, "storage named twice with different types or sizes");
        *idx = i;
        return 0;
    }
    if (s->n >= PK_MAX_STORAGES)
        return ldm_fail(LDM_ERANGE, "%s: more than %u storages at byte %zu", vm->label,
                        PK_MAX_STORAGES, vm->at);
    if (s->n == s->cap) {
        size_t c = s->cap ? s->cap * 2 : 16;
        void *p = realloc(s->v, c * sizeof *s->v);
        if (!p)
            return ldm_fail(LDM_ENOMEM, "%s: out of memory", vm->label);
        s->v = p;
        s->cap = c;
    }
    struct pk_storage *e = &s->v[s->n];
    memset(e, 0, sizeof *e);
    if (!(e->key = strdup(key)))
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", vm->label);
    e->dtype = dtype;
    e->numel = (uint64_t)numel;
    *idx = s->n++;
    return 0;
}

/* BINPERSID ('storage', storage type, key, location, numel[, view metadata]). */
int pk_op_persid(struct pk_vm *vm)
{
    uint32_t pid, v;
    int rc = pk_pop(vm, &pid);
    if (rc)
        return rc;
    const struct pk_value *p = &vm->vals[pid];
    if (p->kind != PK_TUPLE || p->n < 5 || p->n > 6)
        return bad(vm, "persistent id is not a storage tuple");
    const struct pk_value *tag = &vm->vals[p->items[0]], *type = &vm->vals[p->items[1]];
    const struct pk_value *key = &vm->vals[p->items[2]], *numel = &vm->vals[p->items[4]];
    if (tag->kind != PK_STR || strcmp(tag->s, "storage") != 0 || type->kind != PK_GLOBAL ||
        type->i != PK_G_STORAGE || key->kind != PK_STR || numel->kind != PK_INT || numel->i < 0)
        return bad(vm, "persistent id is not ('storage', type, key, location, numel)");
    if (strlen(key->s) != key->slen)
        return bad(vm, "storage key holds a NUL byte");
    size_t idx = 0;
    if ((rc = storage_entry(vm, key->s, type->dtype, numel->i, &idx)) ||
        (rc = pk_push_new(vm, PK_STORAGE, &v)))
        return rc;
    vm->vals[v].i = (int64_t)idx;
    return 0;
}
