/* buf.c: growable byte buffer (see buf.h). No Lua here: it runs inside curl callbacks. */
#include <stdlib.h>
#include <string.h>
#include "buf.h"

int calypso_buf_append(calypso_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;   /* data may still be NULL, and NULL + 0 (or memcpy from NULL) is UB */
    if (n > b->limit - b->len)   /* len <= limit always, so no overflow */
        return -1;
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 4096;
        char *nd;
        while (ncap < b->len + n)
            ncap = ncap > b->limit / 2 ? b->limit : ncap * 2;
        nd = realloc(b->data, ncap);
        if (nd == NULL)
            return -1;
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void calypso_buf_clear(calypso_buf *b)
{
    b->len = 0;
}

void calypso_buf_free(calypso_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
