/* mktiny_tensors.h — a growing list of named tensor shapes, written with random values. */
#ifndef LDM_TOOLS_MKTINY_TENSORS_H
#define LDM_TOOLS_MKTINY_TENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "mktiny.h"
#include "safetensors.h"

struct mt_entry {
    char name[128];
    int ndim;
    int64_t shape[4];
};

struct mt_list {
    struct mt_entry *e;
    size_t n, cap;
};

/* Append a tensor named by printf(fmt, ...) with this shape (ndim <= 4). Returns 0,
 * LDM_ERANGE (a name of 128 bytes or more) or LDM_ENOMEM. */
int mt_list_add(struct mt_list *l, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Free the list's memory and empty it. */
void mt_list_free(struct mt_list *l);

/* Write every tensor of l as F32 to `path` with values from mt_fill (tensor i uses
 * stream + i). Returns 0, LDM_ENOMEM, or a code of ldm_st_write. */
int mt_list_write(const struct mt_list *l, const char *path, uint64_t seed, uint64_t stream);

#define MT_SHAPE(...)                                                                      \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}

#endif
