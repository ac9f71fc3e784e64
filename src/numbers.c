/* numbers.c: one lexical pass over a JSON text (see numbers.h). It tracks only
 * what it needs: inside/outside strings, the last key, and whether the next
 * value belongs to an "amount" member. Malformed JSON is copied as is; cjson
 * reports it afterwards. */
#include <string.h>
#include "numbers.h"

typedef struct rewriter {
    const char *in;
    size_t done;         /* input bytes already accounted for in out */
    calypso_buf *out;
    int started;         /* out holds in[0..done) */
} rewriter;

/* Copies the input up to `upto`, starting the output lazily. */
static int copy_upto(rewriter *w, size_t upto)
{
    if (!w->started) {
        w->out->len = 0;
        w->started = 1;
    }
    if (calypso_buf_append(w->out, w->in + w->done, upto - w->done) != 0)
        return -1;
    w->done = upto;
    return 0;
}

/* Emits in[s..e) as a JSON string, with the marker first when `mark`. */
static int quote_token(rewriter *w, size_t s, size_t e, int mark)
{
    char m = CALYPSO_BIGINT_MARK;
    if (copy_upto(w, s) != 0 || calypso_buf_append(w->out, "\"", 1) != 0 ||
        (mark && calypso_buf_append(w->out, &m, 1) != 0) ||
        calypso_buf_append(w->out, w->in + s, e - s) != 0 ||
        calypso_buf_append(w->out, "\"", 1) != 0)
        return -1;
    w->done = e;
    return 0;
}

/* Index of the quote closing the string whose content starts at s (n when
 * unterminated): memchr to each quote, then count the backslashes before it. */
static size_t string_end(const char *in, size_t s, size_t n)
{
    size_t i = s;
    while (i < n) {
        const char *q = memchr(in + i, '"', n - i);
        size_t j, k;
        if (q == NULL)
            return n;
        j = (size_t)(q - in);
        for (k = j; k > s && in[k - 1] == '\\'; k--)
            ;
        if ((j - k) % 2 == 0)
            return j;
        i = j + 1;
    }
    return n;
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

int calypso_numbers_protect(const char *in, size_t n, int exact_amounts, calypso_buf *out,
                            int *seen)
{
    rewriter w;
    size_t i = 0;
    int amount_next = 0;     /* the next value is an "amount" member's */
    int last_key_amount = 0; /* the last string read was "amount" */
    w.in = in;
    w.done = 0;
    w.out = out;
    w.started = 0;
    *seen = 0;
    while (i < n) {
        char ch = in[i];
        if (ch == '"') {
            size_t s = ++i;
            if (i < n && in[i] == CALYPSO_BIGINT_MARK)
                return -1;
            i = string_end(in, s, n);
            last_key_amount = (i - s == 6 && memcmp(in + s, "amount", 6) == 0);
            amount_next = 0;
            i++;
        } else if (ch == ':') {
            amount_next = last_key_amount;
            last_key_amount = 0;
            i++;
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
            size_t s = i, digits = 0;
            int integral = 1;
            *seen |= CALYPSO_SEEN_NUMBER;
            while (i < n && (in[i] == '-' || in[i] == '+' || in[i] == '.' || in[i] == 'e' ||
                             in[i] == 'E' || (in[i] >= '0' && in[i] <= '9'))) {
                if (in[i] >= '0' && in[i] <= '9')
                    digits++;
                else if (in[i] != '-' || i != s)
                    integral = 0;
                i++;
            }
            if (exact_amounts && amount_next) {
                if (quote_token(&w, s, i, 0) != 0)
                    return -1;
            } else if (integral && digits > 15) {
                if (quote_token(&w, s, i, 1) != 0)
                    return -1;
            }
            amount_next = last_key_amount = 0;
        } else {
            if (ch == 'n')
                *seen |= CALYPSO_SEEN_NULL;
            if (!is_space(ch))
                amount_next = last_key_amount = 0;
            i++;
        }
    }
    if (!w.started)
        return 0;
    return copy_upto(&w, n) == 0 ? 1 : -1;
}
