/* buf.h: a growable byte buffer with a hard cap, filled by libcurl callbacks. */
#ifndef CALYPSO_BUF_H
#define CALYPSO_BUF_H

#include <stddef.h>

typedef struct calypso_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t limit;   /* appends that would grow len past this fail */
} calypso_buf;

/* Appends n bytes; returns 0 on success, -1 when over the limit or out of memory. */
int calypso_buf_append(calypso_buf *b, const void *p, size_t n);
/* Forgets the content but keeps the memory for the next response. */
void calypso_buf_clear(calypso_buf *b);
/* Releases the memory (shrinking a buffer that a huge response had grown). */
void calypso_buf_free(calypso_buf *b);

#endif
