/* validate.c: payload checks, and the JSON writer for documented payloads (see validate.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <lauxlib.h>
#include "compat.h"
#include "validate.h"

/* Where in the payload we are, for messages like "currencyFilter.in[2]". */
typedef struct walk {
    char path[160];
    size_t plen;
    size_t bytes;       /* bytes of JSON so far: everything written, strings counted
                           before escaping (escapes are bounded by the buffer's limit) */
    size_t max_bytes;
    char *msg;
    size_t msglen;
    int depth;          /* of documented objects being written */
    calypso_buf *out;   /* where calypso_payload_write writes */
} walk;

int calypso_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t need;
        unsigned cp, min;
        if (c < 0x80) {
            /* ASCII runs (almost all JSON) eight bytes at a time */
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & 0x8080808080808080ULL)
                    break;
                i += 8;
            }
            if (i < n && s[i] < 0x80)
                i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i <= need)
            return 0;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += need + 1;
    }
    return 1;
}

int calypso_is_uuid(const char *s, size_t n)
{
    /* 1 for a hex digit of either case, 2 for '-' */
    static const unsigned char kind[256] = {
        ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
        ['8'] = 1, ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
        ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['-'] = 2,
    };
    static const unsigned char want[36] = {
        1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 2, 1, 1, 1, 1, 2,
        1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
    };
    size_t i;
    unsigned bad = 0;
    if (n != 36)
        return 0;
    for (i = 0; i < 36; i++)
        bad |= kind[(unsigned char)s[i]] ^ want[i];
    return bad == 0;
}

/* Writes "<path>: <what>" into the message buffer; always returns -1. */
static int fail(walk *w, const char *what)
{
    if (w->plen > 0)
        snprintf(w->msg, w->msglen, "%s: %s", w->path, what);
    else
        snprintf(w->msg, w->msglen, "payload: %s", what);
    return -1;
}

/* Counts n more bytes of JSON against the payload's budget. */
static int charge(walk *w, size_t n)
{
    if (n > w->max_bytes - w->bytes)
        return fail(w, "payload is too large");
    w->bytes += n;
    return 0;
}

/* Appends a key to the path: printable ASCII only, shortened, so a hostile key
 * can neither break the one-line message nor make it huge. */
static size_t path_push_key(walk *w, const char *k, size_t kn)
{
    size_t old = w->plen, i;
    if (w->plen > 0 && w->plen < sizeof w->path - 1)
        w->path[w->plen++] = '.';
    for (i = 0; i < kn && i < 40 && w->plen < sizeof w->path - 4; i++) {
        unsigned char c = (unsigned char)k[i];
        w->path[w->plen++] = (c >= 0x20 && c < 0x7F) ? (char)c : '?';
    }
    if (i < kn && w->plen < sizeof w->path - 4) {
        memcpy(w->path + w->plen, "...", 3);
        w->plen += 3;
    }
    w->path[w->plen] = '\0';
    return old;
}

/* path_push_key for a documented field name: plain ASCII, copied whole. */
static size_t path_push_name(walk *w, const char *name, size_t n)
{
    size_t old = w->plen;
    if (old + 1 + n >= sizeof w->path)
        return path_push_key(w, name, n);
    if (old > 0)
        w->path[w->plen++] = '.';
    memcpy(w->path + w->plen, name, n + 1);
    w->plen += n;
    return old;
}

static size_t path_push_index(walk *w, size_t idx)
{
    size_t old = w->plen;
    int n = snprintf(w->path + w->plen, sizeof w->path - w->plen, "[%zu]", idx);
    if (n > 0 && (size_t)n < sizeof w->path - w->plen)
        w->plen += (size_t)n;
    w->path[w->plen] = '\0';
    return old;
}

static void path_pop(walk *w, size_t old)
{
    w->plen = old;
    w->path[old] = '\0';
}

/* lua-cjson prints numbers with 14 significant digits: refuse any number that
 * would not survive that round trip rather than send a different amount. */
static int number_ok(lua_State *L, int idx, walk *w)
{
    char tmp[40];
    double d;
    int n;
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        if (i > 99999999999999LL || i < -99999999999999LL)
            return fail(w, "integer has more than 14 digits and cannot be sent exactly");
        return charge(w, calypso_format_int(tmp, (long long)i));
    }
#endif
    d = (double)lua_tonumber(L, idx);
    if (!isfinite(d))
        return fail(w, "number must be finite (not NaN or infinity)");
    n = snprintf(tmp, sizeof tmp, "%.14g", d);
    if (strtod(tmp, NULL) != d)
        return fail(w, "number has more than 14 significant digits and cannot be sent exactly");
    return charge(w, n > 0 ? (size_t)n : 0);
}

static int string_ok(lua_State *L, int idx, walk *w)
{
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (charge(w, n) != 0 || charge(w, 2) != 0)   /* the text and its quotes */
        return -1;
    if (!calypso_utf8_valid(s, n))
        return fail(w, "string is not valid UTF-8");
    return 0;
}

static int value_ok(lua_State *L, int idx, int depth, walk *w);

/* A table must be an object (string keys) or a sequence 1..n without holes. */
static int table_ok(lua_State *L, int idx, int depth, walk *w)
{
    size_t n = calypso_rawlen(L, idx), count = 0;
    int has_string = 0, has_index = 0;
    if (depth > CALYPSO_MAX_DEPTH)
        return fail(w, "tables nested too deeply (or a cycle)");
    luaL_checkstack(L, 3, "calypso: payload");
    if (charge(w, 2) != 0)   /* the brackets */
        return -1;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        size_t old;
        int r;
        if (lua_type(L, -2) == LUA_TSTRING) {
            size_t kn;
            const char *k = lua_tolstring(L, -2, &kn);
            has_string = 1;
            old = path_push_key(w, k, kn);
            if (charge(w, kn + 4) != 0) {   /* "key": and a comma */
                lua_pop(L, 2);
                return -1;
            }
            if (!calypso_utf8_valid(k, kn)) {
                lua_pop(L, 2);
                return fail(w, "key is not valid UTF-8");
            }
        } else if (calypso_isinteger(L, -2) && lua_tonumber(L, -2) >= 1 &&
                   (size_t)lua_tonumber(L, -2) <= n) {
            has_index = 1;
            count++;
            old = path_push_index(w, (size_t)lua_tonumber(L, -2));
            if (charge(w, 1) != 0) {   /* a comma */
                lua_pop(L, 2);
                return -1;
            }
        } else {
            lua_pop(L, 2);
            return fail(w, "table keys must be strings, or 1..n without holes (a sparse array or odd key)");
        }
        if (has_string && has_index) {
            lua_pop(L, 2);
            path_pop(w, old);
            return fail(w, "table mixes array items and named fields");
        }
        r = value_ok(L, lua_gettop(L), depth + 1, w);
        if (r != 0) {
            lua_pop(L, 2);
            return r;
        }
        path_pop(w, old);
        lua_pop(L, 1);
    }
    if (has_index && count != n)
        return fail(w, "sparse array (holes) cannot be sent as JSON");
    return 0;
}

static int value_ok(lua_State *L, int idx, int depth, walk *w)
{
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        return charge(w, 5);
    case LUA_TNUMBER:
        return number_ok(L, idx, w);
    case LUA_TSTRING:
        return string_ok(L, idx, w);
    case LUA_TTABLE:
        return table_ok(L, idx, depth, w);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL)   /* purse.null / cjson.null: JSON null */
            return charge(w, 4);
        /* fall through */
    default:
        return fail(w, lua_pushfstring(L, "a %s cannot be sent as JSON", luaL_typename(L, idx)));
    }
}

/* ------------------------------------------------------------------ writing
 * A documented operation's payload is checked and written as JSON in one walk,
 * fields in the order of the endpoint table: no second walk, no lua-cjson call,
 * no Lua string per request, and the same payload always gives the same bytes. */

/* Appends to the request; running out of memory is not the caller's fault. */
static void put(lua_State *L, walk *w, const char *s, size_t n)
{
    if (calypso_buf_append(w->out, s, n) != 0)
        luaL_error(L, "calypso.purse: out of memory building the request");
}

/* put for bytes other than string contents: counted against the budget. */
static int put_charged(lua_State *L, walk *w, const char *s, size_t n)
{
    if (charge(w, n) != 0)
        return -1;
    put(L, w, s, n);
    return 0;
}

/* 1 when one of the 8 bytes at p is a control character, '"' or '\\'
 * (word-at-a-time: a byte is zero in x exactly when it matched). */
static int needs_escape8(const char *p)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t w, quote, backslash, control;
    memcpy(&w, p, 8);
    quote = w ^ (ones * '"');
    backslash = w ^ (ones * '\\');
    control = w & (ones * 0xE0);   /* zero for bytes below 0x20 */
    return (((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) |
            ((control - ones) & ~control)) & highs ? 1 : 0;
}

/* A checked string as a JSON string: quotes, backslashes and control
 * characters escaped, everything else (valid UTF-8) copied in runs. */
static int write_string(lua_State *L, int idx, walk *w)
{
    static const char hex[] = "0123456789abcdef";
    size_t n, i, run = 0;
    const char *s;
    if (string_ok(L, idx, w) != 0)   /* the budget and UTF-8, as for any string */
        return -1;
    s = lua_tolstring(L, idx, &n);
    put(L, w, "\"", 1);
    for (i = 0; i < n; i++) {
        unsigned char c;
        char esc[6] = { '\\', 0, '0', '0', 0, 0 };
        size_t elen = 2;
        while (i + 8 <= n && !needs_escape8(s + i))
            i += 8;   /* eight plain bytes at a time */
        if (i >= n)
            break;
        c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(L, w, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        put(L, w, esc, elen);
    }
    put(L, w, s + run, n - run);
    put(L, w, "\"", 1);
    return 0;
}

/* A list table holds its items at 1..n and nothing else. */
static int only_items(lua_State *L, int idx, size_t n, walk *w)
{
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (!(calypso_isinteger(L, -1) && lua_tonumber(L, -1) >= 1 && lua_tonumber(L, -1) <= (lua_Number)n)) {
            int named = lua_type(L, -1) == LUA_TSTRING;
            lua_pop(L, 1);
            return fail(w, named ? "table mixes array items and named fields"
                                 : "table keys must be strings, or 1..n without holes (a sparse array or odd key)");
        }
    }
    return 0;
}

static int write_fields(lua_State *L, int idx, const calypso_field *fields, walk *w);

/* Checks one documented field (value at idx) and writes its JSON value. */
static int write_field(lua_State *L, int idx, const calypso_field *f, walk *w)
{
    int t = lua_type(L, idx);
    size_t n, i;
    const char *s;
    switch (f->type) {
    case CALYPSO_T_STRING:
    case CALYPSO_T_NONEMPTY:
    case CALYPSO_T_UUID:
        if (t != LUA_TSTRING)
            return fail(w, lua_pushfstring(L, "must be a string (got %s)", luaL_typename(L, idx)));
        s = lua_tolstring(L, idx, &n);
        if (f->type == CALYPSO_T_NONEMPTY && n == 0)
            return fail(w, "must not be empty");
        if (f->type == CALYPSO_T_UUID) {
            char quoted[38];
            if (!calypso_is_uuid(s, n))
                return fail(w, "must be a UUID (8-4-4-4-12 hex digits)");
            if (charge(w, n + 2) != 0)
                return -1;
            /* hex digits and dashes: nothing to check or escape */
            quoted[0] = quoted[37] = '"';
            memcpy(quoted + 1, s, 36);
            put(L, w, quoted, sizeof quoted);
            return 0;
        }
        return write_string(L, idx, w);
    case CALYPSO_T_INDEX:
    case CALYPSO_T_COUNT: {
        char digits[24];
        lua_Number v;
        if (t != LUA_TNUMBER || !calypso_isinteger(L, idx))
            return fail(w, lua_pushfstring(L, "must be an integer (got %s)",
                                           t == LUA_TNUMBER ? "a fraction" : luaL_typename(L, idx)));
        v = lua_tonumber(L, idx);
        if (v < (f->type == CALYPSO_T_COUNT ? 1 : 0))
            return fail(w, f->type == CALYPSO_T_COUNT ? "must be >= 1" : "must be >= 0");
        if (v > 99999999999999.0)   /* the same bound as any number (number_ok) */
            return fail(w, "integer has more than 14 digits and cannot be sent exactly");
        n = calypso_format_int(digits, (long long)v);
        return put_charged(L, w, digits, n);
    }
    case CALYPSO_T_BOOLEAN:
        if (t != LUA_TBOOLEAN)
            return fail(w, lua_pushfstring(L, "must be a boolean (got %s)", luaL_typename(L, idx)));
        if (lua_toboolean(L, idx))
            return put_charged(L, w, "true", 4);
        return put_charged(L, w, "false", 5);
    case CALYPSO_T_STRING_LIST:
        n = t == LUA_TTABLE ? calypso_rawlen(L, idx) : 0;
        if (n == 0)   /* lua-cjson would send an empty table as {}: refuse it */
            return fail(w, "must be a non-empty array of strings");
        luaL_checkstack(L, 3, "calypso: payload");
        if (put_charged(L, w, "[", 1) != 0 || charge(w, 1) != 0)   /* and the ] */
            return -1;
        for (i = 1; i <= n; i++) {
            size_t old;
            int r;
            lua_rawgeti(L, idx, (int)i);
            if (lua_type(L, -1) != LUA_TSTRING) {
                lua_pop(L, 1);
                return fail(w, "must be a non-empty array of strings");
            }
            if (i > 1 && put_charged(L, w, ",", 1) != 0) {
                lua_pop(L, 1);
                return -1;
            }
            old = path_push_index(w, i);
            r = write_string(L, lua_gettop(L), w);
            lua_pop(L, 1);
            if (r != 0)
                return r;
            path_pop(w, old);
        }
        put(L, w, "]", 1);
        return only_items(L, idx, n, w);
    case CALYPSO_T_OBJECT:
        if (t != LUA_TTABLE)
            return fail(w, lua_pushfstring(L, "must be a table (got %s)", luaL_typename(L, idx)));
        if (calypso_rawlen(L, idx) > 0)
            return fail(w, "must be a table of named fields, not an array");
        return write_fields(L, idx, f->fields, w);
    }
    return fail(w, "unsupported field type");
}

/* Writes the table at idx as a JSON object of the documented fields. */
static int write_fields(lua_State *L, int idx, const calypso_field *fields, walk *w)
{
    const calypso_field *f;
    int first = 1;
    if (++w->depth > CALYPSO_MAX_DEPTH)
        return fail(w, "tables nested too deeply (or a cycle)");
    luaL_checkstack(L, 4, "calypso: payload");
    if (put_charged(L, w, "{", 1) != 0 || charge(w, 1) != 0)   /* and the } to come */
        return -1;
    for (f = fields; f->name != NULL; f++) {
        size_t old, namelen = strlen(f->name);
        int r = 0;
        lua_pushlstring(L, f->name, namelen);
        lua_rawget(L, idx);
        old = path_push_name(w, f->name, namelen);
        if (lua_isnil(L, -1)) {
            if (f->required)
                r = fail(w, "required field is missing");
        } else {
            if (charge(w, namelen + 4) != 0) {   /* ,"name": */
                lua_pop(L, 1);
                return -1;
            }
            if (!first)
                put(L, w, ",", 1);
            first = 0;
            put(L, w, "\"", 1);
            put(L, w, f->name, namelen);   /* names are plain ASCII: nothing to escape */
            put(L, w, "\":", 2);
            r = write_field(L, lua_gettop(L), f, w);
        }
        lua_pop(L, 1);
        if (r != 0)
            return r;
        path_pop(w, old);
    }
    put(L, w, "}", 1);
    w->depth--;
    /* Unknown names are almost always typos ("customerID"): refuse them here
     * rather than let the server ignore them. client:call() skips this. */
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        size_t kn;
        const char *k;
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            return fail(w, "keys must be field names (strings)");
        }
        k = lua_tolstring(L, -1, &kn);
        for (f = fields; f->name != NULL; f++)
            if (strlen(f->name) == kn && memcmp(f->name, k, kn) == 0)
                break;
        if (f->name == NULL) {
            path_push_key(w, k, kn);
            lua_pop(L, 1);
            return fail(w, "unknown field (check the spelling against the API docs)");
        }
    }
    return 0;
}

static void walk_init(walk *w, size_t max_bytes, char *msg, size_t msglen)
{
    w->path[0] = '\0';
    w->plen = 0;
    w->bytes = 0;
    w->depth = 0;
    w->max_bytes = max_bytes;
    w->msg = msg;
    w->msglen = msglen;
    w->out = NULL;
}

int calypso_payload_write(lua_State *L, int idx, const calypso_field *fields, size_t max_bytes,
                          calypso_buf *out, char *msg, size_t msglen)
{
    walk w;
    int top = lua_gettop(L);
    int r;
    idx = idx < 0 ? top + idx + 1 : idx;
    walk_init(&w, max_bytes, msg, msglen);
    w.out = out;
    if (calypso_rawlen(L, idx) > 0) {
        snprintf(msg, msglen, "payload: must be a table of named fields, not an array");
        return -1;
    }
    r = write_fields(L, idx, fields, &w);
    lua_settop(L, top);   /* drop the messages pushed by lua_pushfstring */
    return r;
}

size_t calypso_format_int(char dst[24], long long v)
{
    char tmp[24];
    size_t n = 0, k = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u != 0);
    if (v < 0)
        dst[k++] = '-';
    while (n > 0)
        dst[k++] = tmp[--n];
    dst[k] = '\0';
    return k;
}

int calypso_validate(lua_State *L, int idx, size_t max_bytes, char *msg, size_t msglen)
{
    walk w;
    int top = lua_gettop(L);
    int r;
    idx = idx < 0 ? top + idx + 1 : idx;
    walk_init(&w, max_bytes, msg, msglen);
    r = table_ok(L, idx, 1, &w);
    lua_settop(L, top);   /* drop the messages pushed by lua_pushfstring */
    return r;
}
