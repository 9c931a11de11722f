#include "nn/scratch.h"

#include <stdlib.h>

static _Thread_local void *g_buf[FF_SCRATCH_SLOTS];
static _Thread_local size_t g_cap[FF_SCRATCH_SLOTS];

void *ff_scratch(int slot, size_t bytes) {
    if (bytes == 0) bytes = 64;
    if (bytes <= g_cap[slot]) return g_buf[slot];
    size_t cap = bytes + bytes / 4; /* a little slack so slowly growing shapes do not realloc each call */
    cap = (cap + 63) & ~(size_t)63;
    void *p = NULL;
    if (posix_memalign(&p, 64, cap) != 0) return NULL;
    free(g_buf[slot]);
    g_buf[slot] = p;
    g_cap[slot] = cap;
    return p;
}
