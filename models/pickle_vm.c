/* pickle_vm.c — a restricted pickle machine: plain values, storages and tensors, nothing executed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "pickle_int.h"

static int nomem(const struct pk_vm *vm)
{
    return ldm_fail(LDM_ENOMEM, "%s: out of memory at byte %zu", vm->label, vm->pos);
}

static int bad(const struct pk_vm *vm, const char *what)
{
    return ldm_fail(LDM_EFORMAT, "%s: %s at byte %zu", vm->label, what, vm->pos);
}

static int grow(void **v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    while (c < need)
        c *= 2;
    void *p = realloc(*v, c * elem);
    if (!p)
        return -1;
    *v = p;
    *cap = c;
    return 0;
}

/* A new value of `kind`; its index in *idx. */
static int new_value(struct pk_vm *vm, int kind, uint32_t *idx)
{
    if (vm->nvals >= PK_MAX_VALUES)
        return ldm_fail(LDM_ERANGE, "%s: more than %u values at byte %zu", vm->label,
                        PK_MAX_VALUES, vm->pos);
    if (grow((void **)&vm->vals, &vm->capvals, vm->nvals + 1, sizeof *vm->vals))
        return nomem(vm);
    memset(&vm->vals[vm->nvals], 0, sizeof *vm->vals);
    vm->vals[vm->nvals].kind = kind;
    *idx = (uint32_t)vm->nvals++;
    return 0;
}

int pk_push(struct pk_vm *vm, uint32_t v)
{
    if (vm->sp >= PK_MAX_STACK)
        return ldm_fail(LDM_ERANGE, "%s: stack deeper than %u at byte %zu", vm->label,
                        PK_MAX_STACK, vm->pos);
    if (grow((void **)&vm->stack, &vm->capstack, vm->sp + 1, sizeof *vm->stack))
        return nomem(vm);
    vm->stack[vm->sp++] = v;
    return 0;
}

int pk_push_new(struct pk_vm *vm, int kind, uint32_t *idx)
{
    uint32_t v;
    int rc = new_value(vm, kind, &v);
    if (rc == 0)
        rc = pk_push(vm, v);
    if (idx)
        *idx = v;
    return rc;
}

/* The stack floor: the last mark, or 0. */
static size_t floor_of(const struct pk_vm *vm)
{
    return vm->nmarks ? vm->marks[vm->nmarks - 1] : 0;
}

int pk_pop(struct pk_vm *vm, uint32_t *v)
{
    if (vm->sp <= floor_of(vm))
        return bad(vm, "stack underflow");
    *v = vm->stack[--vm->sp];
    return 0;
}

static int top(struct pk_vm *vm, uint32_t *v)
{
    if (vm->sp <= floor_of(vm))
        return bad(vm, "stack underflow");
    *v = vm->stack[vm->sp - 1];
    return 0;
}

/* Take n argument bytes after the opcode. */
static int take(struct pk_vm *vm, size_t n, const unsigned char **out)
{
    if (n > vm->len - vm->pos)
        return ldm_fail(LDM_EFORMAT, "%s: truncated at byte %zu (%zu more bytes needed)",
                        vm->label, vm->pos, n);
    *out = vm->p + vm->pos;
    vm->pos += n;
    return 0;
}

static int take_uint(struct pk_vm *vm, int nb, uint64_t *v)
{
    const unsigned char *b = NULL;
    int rc = take(vm, (size_t)nb, &b);
    if (rc)
        return rc;
    *v = 0;
    for (int i = nb - 1; i >= 0; i--)
        *v = *v << 8 | b[i];
    return 0;
}

/* Append item indices to container c. */
static int add_items(struct pk_vm *vm, uint32_t c, const uint32_t *items, size_t n)
{
    struct pk_value *v = &vm->vals[c];
    if (n > PK_MAX_VALUES * 2u || v->n + n > PK_MAX_VALUES * 2u)
        return ldm_fail(LDM_ERANGE, "%s: container too large at byte %zu", vm->label, vm->pos);
    if (grow((void **)&v->items, &v->cap, v->n + n, sizeof *v->items))
        return nomem(vm);
    if (n)
        memcpy(v->items + v->n, items, n * sizeof *items);
    v->n += n;
    return 0;
}

/* ---- opcodes ------------------------------------------------------------------------------ */

static int op_str(struct pk_vm *vm, int lenbytes, int kind)
{
    uint64_t n;
    const unsigned char *b = NULL;
    uint32_t v;
    int rc = take_uint(vm, lenbytes, &n);
    if (rc)
        return rc;
    if (n > PK_MAX_STR)
        return ldm_fail(LDM_ERANGE, "%s: string of %llu bytes (limit %u) at byte %zu", vm->label,
                        (unsigned long long)n, PK_MAX_STR, vm->pos);
    if ((rc = take(vm, (size_t)n, &b)) || (rc = pk_push_new(vm, kind, &v)))
        return rc;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return nomem(vm);
    memcpy(s, b, (size_t)n);
    s[n] = 0;
    vm->vals[v].s = s;
    vm->vals[v].slen = (size_t)n;
    return 0;
}

static int push_int(struct pk_vm *vm, int64_t i)
{
    uint32_t v;
    int rc = pk_push_new(vm, PK_INT, &v);
    if (rc == 0)
        vm->vals[v].i = i;
    return rc;
}

static int op_uint(struct pk_vm *vm, int nb)
{
    uint64_t u;
    int rc = take_uint(vm, nb, &u);
    if (rc)
        return rc;
    return push_int(vm, nb == 4 ? (int64_t)(int32_t)(uint32_t)u : (int64_t)u);
}

/* LONG1 / LONG4: little-endian two's complement; more than 8 bytes kept as bytes. */
static int op_long(struct pk_vm *vm, int lenbytes)
{
    uint64_t n, u;
    int rc = take_uint(vm, lenbytes, &n);
    if (rc)
        return rc;
    if (n > PK_MAX_BIGINT)
        return ldm_fail(LDM_ERANGE, "%s: integer of %llu bytes at byte %zu", vm->label,
                        (unsigned long long)n, vm->pos);
    if (n > 8) {
        vm->pos -= (size_t)lenbytes;
        return op_str(vm, lenbytes, PK_BIGINT);
    }
    if (n == 0)
        return push_int(vm, 0);
    if ((rc = take_uint(vm, (int)n, &u)))
        return rc;
    if (n < 8 && (u >> (8 * n - 1) & 1))
        u |= ~(uint64_t)0 << (8 * n);
    return push_int(vm, (int64_t)u);
}

static int op_float(struct pk_vm *vm)
{
    const unsigned char *b = NULL;
    uint32_t v;
    int rc = take(vm, 8, &b);
    if (rc || (rc = pk_push_new(vm, PK_FLOAT, &v)))
        return rc;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | b[i];
    memcpy(&vm->vals[v].f, &u, sizeof u);
    return 0;
}

static int op_bool(struct pk_vm *vm, int b)
{
    uint32_t v;
    int rc = pk_push_new(vm, PK_BOOL, &v);
    if (rc == 0)
        vm->vals[v].i = b;
    return rc;
}

static int op_mark(struct pk_vm *vm)
{
    if (vm->nmarks >= PK_MAX_MARKS)
        return ldm_fail(LDM_ERANGE, "%s: more than %u open marks at byte %zu", vm->label,
                        PK_MAX_MARKS, vm->pos);
    if (grow((void **)&vm->marks, &vm->capmarks, vm->nmarks + 1, sizeof *vm->marks))
        return nomem(vm);
    vm->marks[vm->nmarks++] = vm->sp;
    return 0;
}

/* Pop everything down to the last mark: items at stack[*from..sp). */
static int pop_mark(struct pk_vm *vm, size_t *from)
{
    if (vm->nmarks == 0)
        return bad(vm, "no mark on the stack");
    *from = vm->marks[--vm->nmarks];
    return 0;
}

/* A tuple of the top n values (n < 0: down to the mark). */
static int op_tuple(struct pk_vm *vm, int n)
{
    size_t from = 0;
    uint32_t t;
    int rc = 0;
    if (n < 0)
        rc = pop_mark(vm, &from);
    else if (vm->sp - floor_of(vm) < (size_t)n)
        rc = bad(vm, "stack underflow");
    else
        from = vm->sp - (size_t)n;
    if (rc || (rc = new_value(vm, PK_TUPLE, &t)))
        return rc;
    if ((rc = add_items(vm, t, vm->sp > from ? vm->stack + from : NULL, vm->sp - from)))
        return rc;
    vm->sp = from;
    return pk_push(vm, t);
}

/* APPEND(S) / SETITEM(S): items from `from` go into the container below them. */
static int fill(struct pk_vm *vm, size_t from, int is_dict)
{
    if (from == 0 || from - 1 < floor_of(vm))
        return bad(vm, "no container to fill");
    uint32_t c = vm->stack[from - 1];
    int kind = vm->vals[c].kind;
    if (kind != (is_dict ? PK_DICT : PK_LIST))
        return bad(vm, is_dict ? "SETITEM on a value that is not a dict"
                               : "APPEND on a value that is not a list");
    size_t n = vm->sp - from;
    if (is_dict && n % 2)
        return bad(vm, "odd number of items for SETITEMS");
    int rc = add_items(vm, c, n ? vm->stack + from : NULL, n);
    vm->sp = from;
    return rc;
}

static int op_fill(struct pk_vm *vm, int marked, int is_dict)
{
    size_t from = 0;
    if (!marked) {
        size_t need = is_dict ? 2 : 1;
        if (vm->sp - floor_of(vm) < need + 1)
            return bad(vm, "stack underflow");
        return fill(vm, vm->sp - need, is_dict);
    }
    int rc = pop_mark(vm, &from);
    return rc ? rc : fill(vm, from, is_dict);
}

static int op_put(struct pk_vm *vm, uint64_t key)
{
    uint32_t v;
    int rc = top(vm, &v);
    if (rc)
        return rc;
    if (key >= PK_MAX_MEMO)
        return ldm_fail(LDM_ERANGE, "%s: memo key %llu (limit %u) at byte %zu", vm->label,
                        (unsigned long long)key, PK_MAX_MEMO, vm->pos);
    size_t old = vm->capmemo;
    if (grow((void **)&vm->memo, &vm->capmemo, (size_t)key + 1, sizeof *vm->memo))
        return nomem(vm);
    memset(vm->memo + old, 0xff, (vm->capmemo - old) * sizeof *vm->memo);
    vm->nmemo += vm->memo[key] == UINT32_MAX;
    vm->memo[key] = v;
    return 0;
}

static int op_get(struct pk_vm *vm, uint64_t key)
{
    if (key >= vm->capmemo || vm->memo[key] == UINT32_MAX)
        return ldm_fail(LDM_EFORMAT, "%s: memo key %llu not defined at byte %zu", vm->label,
                        (unsigned long long)key, vm->pos);
    return pk_push(vm, vm->memo[key]);
}

static int op_memo_arg(struct pk_vm *vm, int nb, int get)
{
    uint64_t key;
    int rc = take_uint(vm, nb, &key);
    if (rc)
        return rc;
    return get ? op_get(vm, key) : op_put(vm, key);
}

/* GLOBAL: "module\nname\n". */
static int op_global_text(struct pk_vm *vm)
{
    const char *s = (const char *)vm->p + vm->pos;
    size_t avail = vm->len - vm->pos;
    const char *nl1 = memchr(s, '\n', avail);
    const char *nl2 = nl1 ? memchr(nl1 + 1, '\n', avail - (size_t)(nl1 + 1 - s)) : NULL;
    if (!nl2)
        return ldm_fail(LDM_EFORMAT, "%s: truncated GLOBAL at byte %zu", vm->label, vm->pos);
    vm->pos += (size_t)(nl2 + 1 - s);
    return pk_op_global(vm, s, (size_t)(nl1 - s), nl1 + 1, (size_t)(nl2 - nl1 - 1));
}

static int op_stack_global(struct pk_vm *vm)
{
    uint32_t m, n;
    int rc = pk_pop(vm, &n);
    if (rc || (rc = pk_pop(vm, &m)))
        return rc;
    const struct pk_value *mv = &vm->vals[m], *nv = &vm->vals[n];
    if (mv->kind != PK_STR || nv->kind != PK_STR)
        return bad(vm, "STACK_GLOBAL of values that are not strings");
    return pk_op_global(vm, mv->s, mv->slen, nv->s, nv->slen);
}

static int op_pop(struct pk_vm *vm)
{
    uint32_t v;
    if (vm->sp > floor_of(vm))
        return pk_pop(vm, &v);
    size_t from = 0;
    int rc = pop_mark(vm, &from);
    vm->sp = rc ? vm->sp : from;
    return rc;
}

static int op_pop_mark(struct pk_vm *vm)
{
    size_t from = 0;
    int rc = pop_mark(vm, &from);
    if (rc == 0)
        vm->sp = from;
    return rc;
}

static int op_dup(struct pk_vm *vm)
{
    uint32_t v;
    int rc = top(vm, &v);
    return rc ? rc : pk_push(vm, v);
}

static int op_skip(struct pk_vm *vm, size_t n)
{
    const unsigned char *b = NULL;
    return take(vm, n, &b);
}

static int op_proto(struct pk_vm *vm)
{
    uint64_t v;
    int rc = take_uint(vm, 1, &v);
    if (rc == 0 && v > 5)
        rc = ldm_fail(LDM_EUNSUPPORTED, "%s: pickle protocol %llu at byte %zu", vm->label,
                      (unsigned long long)v, vm->pos - 2);
    return rc;
}

static int op_stop(struct pk_vm *vm, int *done)
{
    if (vm->nmarks)
        return bad(vm, "STOP with a mark still open");
    int rc = pk_pop(vm, &vm->result);
    if (rc == 0 && vm->sp)
        rc = bad(vm, "STOP with more than one value on the stack");
    *done = 1;
    return rc;
}

/* Containers, memo and stack opcodes; returns 1 when `op` is not one of them. */
static int step_struct(struct pk_vm *vm, int op)
{
    switch (op) {
    case '}': return pk_push_new(vm, PK_DICT, NULL);
    case ']': return pk_push_new(vm, PK_LIST, NULL);
    case ')': return op_tuple(vm, 0);
    case 't': return op_tuple(vm, -1);
    case 0x85: return op_tuple(vm, 1);
    case 0x86: return op_tuple(vm, 2);
    case 0x87: return op_tuple(vm, 3);
    case '(': return op_mark(vm);
    case 'a': return op_fill(vm, 0, 0);
    case 'e': return op_fill(vm, 1, 0);
    case 's': return op_fill(vm, 0, 1);
    case 'u': return op_fill(vm, 1, 1);
    case 'q': return op_memo_arg(vm, 1, 0);
    case 'r': return op_memo_arg(vm, 4, 0);
    case 0x94: return op_put(vm, vm->nmemo);
    case 'h': return op_memo_arg(vm, 1, 1);
    case 'j': return op_memo_arg(vm, 4, 1);
    case '0': return op_pop(vm);
    case '1': return op_pop_mark(vm);
    case '2': return op_dup(vm);
    default: return 1;
    }
}

/* Scalars, strings and object opcodes; returns 1 when `op` is not one of them. */
static int step_value(struct pk_vm *vm, int op)
{
    switch (op) {
    case 0x80: return op_proto(vm);
    case 0x95: return op_skip(vm, 8);
    case 'N': return pk_push_new(vm, PK_NONE, NULL);
    case 0x88: return op_bool(vm, 1);
    case 0x89: return op_bool(vm, 0);
    case 'J': return op_uint(vm, 4);
    case 'K': return op_uint(vm, 1);
    case 'M': return op_uint(vm, 2);
    case 0x8a: return op_long(vm, 1);
    case 0x8b: return op_long(vm, 4);
    case 'G': return op_float(vm);
    case 'X': return op_str(vm, 4, PK_STR);
    case 0x8c: return op_str(vm, 1, PK_STR);
    case 0x8d: return op_str(vm, 8, PK_STR);
    case 'B': return op_str(vm, 4, PK_BYTES);
    case 'C': return op_str(vm, 1, PK_BYTES);
    case 0x8e: return op_str(vm, 8, PK_BYTES);
    case 'c': return op_global_text(vm);
    case 0x93: return op_stack_global(vm);
    case 'R': return pk_op_reduce(vm);
    case 'b': return pk_op_build(vm);
    case 'Q': return pk_op_persid(vm);
    default: return 1;
    }
}

int pk_vm_run(struct pk_vm *vm, const unsigned char *p, size_t len, size_t start)
{
    vm->p = p;
    vm->len = len;
    vm->pos = start;
    for (int done = 0; !done;) {
        if (vm->pos >= vm->len)
            return ldm_fail(LDM_EFORMAT, "%s: truncated at byte %zu (no STOP)", vm->label, vm->pos);
        size_t at = vm->pos;
        vm->at = at;
        int op = vm->p[vm->pos++];
        int rc = op == '.' ? op_stop(vm, &done) : step_struct(vm, op);
        if (rc == 1)
            rc = step_value(vm, op);
        if (rc == 1)
            return ldm_fail(LDM_EUNSUPPORTED, "%s: unsupported pickle opcode 0x%02x at byte %zu",
                            vm->label, (unsigned)op, at);
        if (rc)
            return rc;
    }
    return 0;
}

void pk_vm_free(struct pk_vm *vm)
{
    for (size_t i = 0; i < vm->nvals; i++) {
        free(vm->vals[i].s);
        free(vm->vals[i].items);
        free(vm->vals[i].t);
    }
    free(vm->vals);
    free(vm->stack);
    free(vm->marks);
    free(vm->memo);
    memset(vm, 0, sizeof *vm);
}
