/* wipe_test.c: proves that closing a client leaves no copy of its secret in freed memory.
 * free() is interposed for the whole process (the executable's definition wins over libc's
 * for every shared library, libmbedcrypto included); while `watching`, every freed block is
 * scanned for the secret itself, for its HMAC ipad/opad (key ^ 0x36, key ^ 0x5c), and for the
 * SHA-512 states after absorbing each padded key block: the forms in which the core holds it
 * (the signer keeps only those two states; anyone holding them can sign). Negative controls
 * first prove the detector sees an unwiped copy. munmap() is interposed the same way: the
 * signer keeps its two states in a page of their own (left out of core dumps), which must be
 * wiped before it is unmapped. Run by spec/secrets_spec.lua through fuzz/wipe_test.sh.
 * Exit 0 and "0 held the secret" on success. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <mbedtls/sha512.h>
#include <mbedtls/version.h>
#include "sign.h"

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define SHA512_STATE(ctx) ((ctx).MBEDTLS_PRIVATE(state))
#define sha512_starts mbedtls_sha512_starts
#define sha512_update mbedtls_sha512_update
#else
#define SHA512_STATE(ctx) ((ctx).state)
#define sha512_starts mbedtls_sha512_starts_ret
#define sha512_update mbedtls_sha512_update_ret
#endif

int luaopen_calypso_purse(lua_State *L);

#define SECRET "sk-wipe-9Qe4Lr7Tz2Xc6Vb1Nm8Ka3Sd5Fg0Hj"
#define SECRET_LEN (sizeof SECRET - 1)

static unsigned char ipad[SECRET_LEN], opad[SECRET_LEN];
static unsigned char inner_state[64], outer_state[64];   /* SHA-512 after one padded key block */
static void (*real_free)(void *);
static int (*real_munmap)(void *, size_t);
static int watching;
static unsigned long watched, held, unmapped;

static int holds(const void *p, size_t n, const void *needle, size_t len)
{
    return n >= len && memmem(p, n, needle, len) != NULL;
}

void free(void *p)
{
    static int resolving;
    if (real_free == NULL) {   /* first call, possibly from a library constructor */
        if (resolving)
            return;            /* dlsym's own bookkeeping while resolving: a few bytes leak */
        resolving = 1;
        real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
        resolving = 0;
        if (real_free == NULL)
            return;
    }
    if (p != NULL && watching) {
        size_t n = malloc_usable_size(p);
        watched++;
        if (holds(p, n, SECRET, SECRET_LEN) || holds(p, n, ipad, SECRET_LEN) || holds(p, n, opad, SECRET_LEN) ||
            holds(p, n, inner_state, sizeof inner_state) || holds(p, n, outer_state, sizeof outer_state))
            held++;
    }
    real_free(p);
}

/* The same check for memory handed back with munmap (the signer's page). */
int munmap(void *p, size_t n)
{
    if (real_munmap == NULL &&
        (real_munmap = (int (*)(void *, size_t))dlsym(RTLD_NEXT, "munmap")) == NULL)
        return -1;
    if (watching && p != NULL) {
        unmapped++;
        if (holds(p, n, SECRET, SECRET_LEN) || holds(p, n, ipad, SECRET_LEN) || holds(p, n, opad, SECRET_LEN) ||
            holds(p, n, inner_state, sizeof inner_state) || holds(p, n, outer_state, sizeof outer_state))
            held++;
    }
    return real_munmap(p, n);
}

/* The SHA-512 state words after absorbing the 128-byte block key ^ pad. */
static void padded_key_state(unsigned char pad, unsigned char *out)
{
    unsigned char block[128];
    mbedtls_sha512_context x;
    size_t i;
    memset(block, pad, sizeof block);
    for (i = 0; i < SECRET_LEN; i++)
        block[i] ^= (unsigned char)SECRET[i];
    mbedtls_sha512_init(&x);
    sha512_starts(&x, 0);
    sha512_update(&x, block, sizeof block);
    memcpy(out, SHA512_STATE(x), 64);
    mbedtls_sha512_free(&x);
}

/* Negative control: frees a block holding needle at offset `at` while watching;
 * 1 when the detector counted it. */
static int detects(const void *needle, size_t len, size_t at)
{
    unsigned long before = held;
    unsigned char *copy = malloc(at + len + 64);
    if (copy == NULL)
        return 0;
    memset(copy, 0, at + len + 64);
    memcpy(copy + at, needle, len);
    watching = 1;
    free(copy);
    watching = 0;
    return held == before + 1;
}

static void run(lua_State *L, const char *code)
{
    if (luaL_dostring(L, code) != 0) {
        fprintf(stderr, "wipe_test: %s\n", lua_tostring(L, -1));
        exit(2);
    }
}

int main(void)
{
    size_t i;
    calypso_signer s;
    char hex[CALYPSO_SIGN_HEX];
    lua_State *L;

    free(NULL);   /* resolves the real free if no constructor has yet */
    if (real_free == NULL)
        return 2;
    for (i = 0; i < SECRET_LEN; i++) {
        ipad[i] = (unsigned char)SECRET[i] ^ 0x36;
        opad[i] = (unsigned char)SECRET[i] ^ 0x5c;
    }
    padded_key_state(0x36, inner_state);
    padded_key_state(0x5c, outer_state);

    /* An unwiped ipad copy must be seen, and so must an unwiped inner hash state. */
    if (!detects(ipad, SECRET_LEN, 17)) {
        printf("wipe_test: the detector missed an unwiped copy\n");
        return 1;
    }
    if (!detects(inner_state, sizeof inner_state, 216)) {
        printf("wipe_test: the detector missed an unwiped hash state\n");
        return 1;
    }
    printf("wipe_test: the detector sees an unwiped copy\n");
    held = watched = 0;

    /* The signer alone (sign.c): keyed, used, freed. */
    if (calypso_signer_init(&s, (const unsigned char *)SECRET, SECRET_LEN) != 0 ||
        calypso_signer_sign(&s, (const unsigned char *)"body", 4, hex) != 0)
        return 2;
    watching = 1;
    calypso_signer_free(&s);
    watching = 0;

    /* A whole client through Lua: new, sign a request (prepare), close; then purse.sign, whose
     * one-shot HMAC context lives and dies inside the call. The secret's Lua string is the
     * caller's and stays alive (referenced) while we watch. */
    L = luaL_newstate();
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_calypso_purse);
    lua_setfield(L, -2, "calypso.purse");
    lua_pop(L, 2);
    run(L, "purse = require 'calypso.purse'\n"
           "SECRET = '" SECRET "'\n"
           "c = purse.new{ key = 'k', secret = SECRET, account = '0x1', base_url = 'http://127.0.0.1:9' }\n"
           "assert(c:prepare('get_customer', { customerId = '3fa85f64-5717-4562-b3fc-2c963f66afa6' }))");
    watching = 1;
    run(L, "c:close()");
    run(L, "assert(#purse.sign(SECRET, 'body') == 128)");
    run(L, "assert(purse.verify(SECRET, 'body', purse.sign(SECRET, 'body')))");
    watching = 0;
    lua_close(L);

    printf("wipe_test: %lu frees and %lu unmaps watched while closing, %lu held the secret\n",
           watched, unmapped, held);
    /* two signer pages unmapped at least: the bare signer's and the client's */
    return held == 0 && watched > 0 && unmapped >= 2 ? 0 : 1;
}
