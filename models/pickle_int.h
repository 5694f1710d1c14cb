/* pickle_int.h — the restricted pickle machine and the stored-zip reader behind pickle.h. */
#ifndef LDM_PICKLE_INT_H
#define LDM_PICKLE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

/* Limits against hostile files. */
#define PK_MAX_VALUES (1u << 22)     /* values made by one pickle */
#define PK_MAX_STACK (1u << 20)      /* stack entries */
#define PK_MAX_MARKS (1u << 16)      /* open MARKs */
#define PK_MAX_MEMO (1u << 22)       /* memo keys are below this */
#define PK_MAX_STR (1u << 20)        /* bytes in one string */
#define PK_MAX_BIGINT 64             /* bytes in one LONG1/LONG4 integer */
#define PK_MAX_STORAGES (1u << 16)   /* storages in one file */
#define PK_MAX_TENSORS (1u << 20)    /* tensors in one file */
#define PK_MAX_DEPTH 32              /* nesting of dicts in the state dict */

enum pk_kind {
    PK_NONE, PK_BOOL, PK_INT, PK_BIGINT, PK_FLOAT, PK_STR, PK_BYTES,
    PK_TUPLE, PK_LIST, PK_DICT, PK_GLOBAL, PK_STORAGE, PK_TENSOR
};

/* The only callables a file may name. */
enum pk_global { PK_G_ODICT, PK_G_REBUILD_V2, PK_G_PARAMETER, PK_G_STORAGE };

struct pk_tensor {
    uint32_t storage;          /* index into the storage table */
    int64_t offset;            /* in elements */
    int ndim;
    int64_t shape[LDM_MAXDIM];
    int64_t stride[LDM_MAXDIM];
};

/* One value; containers hold value indices (dicts: key, value pairs). */
struct pk_value {
    int kind;
    int64_t i;                 /* BOOL, INT; GLOBAL: enum pk_global; STORAGE: table index */
    double f;
    int dtype;                 /* GLOBAL of a storage type: its dtype */
    char *s;                   /* STR, BYTES, BIGINT (little-endian bytes): owned */
    size_t slen;
    uint32_t *items;           /* TUPLE, LIST, DICT: owned */
    size_t n, cap;
    struct pk_tensor *t;       /* TENSOR: owned */
};

/* A storage named by a persistent id; data is set once the container is read. */
struct pk_storage {
    char *key;
    int dtype;
    uint64_t numel;
    const unsigned char *data;
    size_t nbytes;
};

struct pk_storages {
    struct pk_storage *v;
    size_t n, cap;
};

/* One pickle being run: values, stack, marks and memo, all owned. */
struct pk_vm {
    const char *label;
    const unsigned char *p;
    size_t len, pos, at;      /* at: where the current opcode starts */
    struct pk_value *vals;
    size_t nvals, capvals;
    uint32_t *stack;
    size_t sp, capstack;
    size_t *marks;
    size_t nmarks, capmarks;
    uint32_t *memo;
    size_t capmemo, nmemo;
    struct pk_storages *st;    /* shared across the pickles of one file */
    uint32_t result;           /* the value STOP returned */
};

/* Run the pickle starting at p[start] (p[0..len) readable) to its STOP. On
 * success vm->result is the value and vm->pos the offset after the STOP;
 * details give byte offsets from p (the start of the file). The caller
 * zeroes *vm, sets label and st, and frees it with pk_vm_free either way.
 * Returns 0, LDM_EFORMAT (malformed or truncated; the detail names the byte),
 * LDM_EDENIED (a refused global), LDM_EUNSUPPORTED (an opcode or dtype not
 * handled), LDM_ERANGE (a limit) or LDM_ENOMEM. */
int pk_vm_run(struct pk_vm *vm, const unsigned char *p, size_t len, size_t start);
void pk_vm_free(struct pk_vm *vm);

/* Inside the machine: push a new value of `kind` (its index in *idx unless
 * NULL), pop the top value, and the opcodes that build objects. */
int pk_push_new(struct pk_vm *vm, int kind, uint32_t *idx);
int pk_pop(struct pk_vm *vm, uint32_t *v);
int pk_push(struct pk_vm *vm, uint32_t v);
int pk_op_global(struct pk_vm *vm, const char *mod, size_t mlen, const char *name, size_t nlen);
int pk_op_reduce(struct pk_vm *vm);
int pk_op_build(struct pk_vm *vm);
int pk_op_persid(struct pk_vm *vm);

/* One stored member of a zip archive; name is NUL-terminated and owned. */
struct pk_zip_member {
    char *name;
    const unsigned char *data;
    size_t size;
    int stored;                /* 1 when not compressed */
};

/* Read the central directory of the zip archive in buf and find each
 * member's data. *out (malloc'd, sorted by name) and *n belong to the caller:
 * free with pk_zip_free. Returns 0, LDM_EFORMAT, LDM_EUNSUPPORTED or LDM_ENOMEM. */
int pk_zip_read(const unsigned char *buf, size_t len, const char *label,
                struct pk_zip_member **out, size_t *n);
void pk_zip_free(struct pk_zip_member *m, size_t n);
const struct pk_zip_member *pk_zip_get(const struct pk_zip_member *m, size_t n, const char *name);

#endif
