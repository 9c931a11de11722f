#include "runtime/scratch.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct {
    void *buf[FF_SCRATCH_SLOTS];
    size_t cap[FF_SCRATCH_SLOTS];
    int registered; /* with the key whose destructor frees the buffers at thread exit */
} scratch_t;

static _Thread_local scratch_t t_scratch;
static pthread_key_t g_key;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p) {
    scratch_t *s = p;
    for (int i = 0; i < FF_SCRATCH_SLOTS; i++) {
        free(s->buf[i]);
        s->buf[i] = NULL;
        s->cap[i] = 0;
    }
    s->registered = 0;
}

static void key_init(void) { pthread_key_create(&g_key, scratch_free); }

void *ff_scratch(int slot, size_t bytes) {
    scratch_t *s = &t_scratch;
    if (bytes == 0) bytes = 64;
    if (bytes <= s->cap[slot]) return s->buf[slot];
    if (!s->registered) {
        pthread_once(&g_once, key_init);
        pthread_setspecific(g_key, s);
        s->registered = 1;
    }
    size_t cap = bytes + bytes / 4; /* a little slack so slowly growing shapes do not realloc each call */
    cap = (cap + 63) & ~(size_t)63;
    void *p = NULL;
    if (posix_memalign(&p, 64, cap) != 0) return NULL;
    free(s->buf[slot]);
    s->buf[slot] = p;
    s->cap[slot] = cap;
    return p;
}
