/* options.c: purse.new's options table, checked and read into a calypso_options
 * (pointers into Lua strings that the caller's private copy keeps alive). */
#include <string.h>
#include <lauxlib.h>
#include "compat.h"
#include "options.h"

#define DEFAULT_BASE_URL "https://api.calypso.finance"
#define DEFAULT_TIMEOUT 30.0
#define DEFAULT_CONNECT_TIMEOUT 10.0
/* Seconds a kept-alive connection may have idled and still carry a write (README,
 * "Connections"): under the shortest keep-alive timeouts servers commonly use
 * (5 s: Apache, Node.js), so a write never arrives as the server closes it. */
#define DEFAULT_WRITE_REUSE_IDLE 2.0
#define DEFAULT_MAX_RESPONSE (8u << 20)   /* 8 MiB: far above any documented body */

static const char *const option_names[] = {
    "key", "secret", "account", "base_url", "timeout", "connect_timeout", "ca_file",
    "proxy", "user_agent", "max_response_size", "insecure_skip_tls_verify",
    "exact_amounts", "write_reuse_idle", NULL
};

/* Pushes opts[name], read raw: a hostile __index on the options table never runs. */
static void get_opt(lua_State *L, const char *name)
{
    lua_pushstring(L, name);
    lua_rawget(L, 1);
}

static const char *opt_string(lua_State *L, const char *name, size_t *len, int required)
{
    const char *s;
    *len = 0;   /* absent: no length (callers share one length variable) */
    get_opt(L, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        if (required)
            luaL_error(L, "calypso.purse.new: option '%s' is required", name);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "calypso.purse.new: option '%s' must be a string (got %s)", name,
                   luaL_typename(L, -1));
    s = lua_tolstring(L, -1, len);
    if (required && *len == 0)
        luaL_error(L, "calypso.purse.new: option '%s' must not be empty", name);
    lua_pop(L, 1);   /* still referenced by the opts table, so s stays valid */
    return s;
}

/* Header values must be printable ASCII: no CR/LF header injection, no NULs. */
static void opt_header_safe(lua_State *L, const char *name, const char *s, size_t n)
{
    size_t i;
    for (i = 0; s != NULL && i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7F)
            luaL_error(L, "calypso.purse.new: option '%s' must be printable ASCII", name);
}

static double opt_seconds(lua_State *L, const char *name, double dflt)
{
    double v;
    get_opt(L, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return dflt;
    }
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "calypso.purse.new: option '%s' must be a number of seconds (got %s)",
                   name, luaL_typename(L, -1));
    v = (double)lua_tonumber(L, -1);
    if (!(v >= 0.001 && v <= 86400.0))
        luaL_error(L, "calypso.purse.new: option '%s' must be between 0.001 and 86400 seconds", name);
    lua_pop(L, 1);
    return v;
}

static int opt_flag(lua_State *L, const char *name)
{
    int v;
    get_opt(L, name);
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
        luaL_error(L, "calypso.purse.new: option '%s' must be a boolean", name);
    v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Whether the URL's authority (after "://", up to the first / ? or #) holds
 * userinfo ("user:password@"): it would show in tostring, info() and events. */
static int has_userinfo(const char *url, size_t n)
{
    const char *p = strstr(url, "://"), *end = url + n;
    for (p = p != NULL ? p + 3 : end; p < end && *p != '/' && *p != '?' && *p != '#'; p++)
        if (*p == '@')
            return 1;
    return 0;
}

/* See options.h. */
void calypso_options_read(lua_State *L, calypso_options *o)
{
    size_t n;
    luaL_checktype(L, 1, LUA_TTABLE);
    /* Unknown names are typos ("secret_key"): raise rather than ignore. */
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        const char *const *p;
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "calypso.purse.new: option names must be strings");
        for (p = option_names; *p != NULL; p++)
            if (strcmp(*p, lua_tostring(L, -1)) == 0)
                break;
        if (*p == NULL)
            luaL_error(L, "calypso.purse.new: unknown option '%s'", lua_tostring(L, -1));
    }
    /* Read from a private copy (raw reads): the option strings must stay alive
     * while we hold pointers into them, and a finalizer that runs in one of
     * our allocations could drop them from the caller's table. */
    {
        const char *const *p;
        lua_createtable(L, 0, 8);                     /* opts, copy */
        for (p = option_names; *p != NULL; p++) {
            lua_pushstring(L, *p);
            lua_pushvalue(L, -1);
            lua_rawget(L, 1);                         /* opts, copy, name, value */
            lua_rawset(L, -3);
        }
        lua_replace(L, 1);                            /* copy */
    }
    memset(o, 0, sizeof *o);
    o->key = opt_string(L, "key", &n, 1);
    opt_header_safe(L, "key", o->key, n);
    if (n > 256)
        luaL_error(L, "calypso.purse.new: option 'key' is too long");
    o->secret = opt_string(L, "secret", &o->secret_len, 1);
    o->account = opt_string(L, "account", &o->account_len, 1);
    opt_header_safe(L, "account", o->account, o->account_len);
    if (o->account_len > 256)   /* account ids are 42 characters ("0x" + 40 hex) */
        luaL_error(L, "calypso.purse.new: option 'account' is too long");
    o->base_url = opt_string(L, "base_url", &o->base_len, 0);
    if (o->base_url == NULL) {
        o->base_url = DEFAULT_BASE_URL;
        o->base_len = strlen(DEFAULT_BASE_URL);
    }
    opt_header_safe(L, "base_url", o->base_url, o->base_len);
    if (!(o->base_len > 8 && (strncmp(o->base_url, "https://", 8) == 0 ||
                              strncmp(o->base_url, "http://", 7) == 0)) || o->base_len > CALYPSO_MAX_BASE_URL)
        luaL_error(L, "calypso.purse.new: option 'base_url' must be an http:// or https:// URL");
    if (has_userinfo(o->base_url, o->base_len))   /* never echo it: it holds a password */
        luaL_error(L, "calypso.purse.new: option 'base_url' must not carry credentials "
                      "(user:password@); give the API key and secret as options");
    while (o->base_len > 8 && o->base_url[o->base_len - 1] == '/')
        o->base_len--;   /* "https://host/" and "https://host" mean the same */
    o->ca_file = opt_string(L, "ca_file", &n, 0);
    if (o->ca_file != NULL && strlen(o->ca_file) != n)
        luaL_error(L, "calypso.purse.new: option 'ca_file' must not contain NUL bytes");
    if (n > CALYPSO_MAX_CA_FILE)
        luaL_error(L, "calypso.purse.new: option 'ca_file' is too long (at most %d bytes)", CALYPSO_MAX_CA_FILE);
    o->proxy = opt_string(L, "proxy", &n, 0);
    opt_header_safe(L, "proxy", o->proxy, n);
    o->user_agent = opt_string(L, "user_agent", &n, 0);
    opt_header_safe(L, "user_agent", o->user_agent, n);
    if (n > 200)
        luaL_error(L, "calypso.purse.new: option 'user_agent' is too long");
    o->timeout = opt_seconds(L, "timeout", DEFAULT_TIMEOUT);
    o->connect_timeout = opt_seconds(L, "connect_timeout", DEFAULT_CONNECT_TIMEOUT);
    get_opt(L, "max_response_size");
    if (lua_isnil(L, -1))
        o->max_response = DEFAULT_MAX_RESPONSE;
    else if (!calypso_isinteger(L, -1) || lua_tonumber(L, -1) < 1024 || lua_tonumber(L, -1) > (1 << 30))
        luaL_error(L, "calypso.purse.new: option 'max_response_size' must be an integer from 1024 to 2^30");
    else
        o->max_response = (lua_Integer)lua_tonumber(L, -1);
    lua_pop(L, 1);
    o->insecure = opt_flag(L, "insecure_skip_tls_verify");
    o->exact_amounts = opt_flag(L, "exact_amounts");
    get_opt(L, "write_reuse_idle");
    if (lua_isnil(L, -1)) {
        o->write_reuse_idle = DEFAULT_WRITE_REUSE_IDLE;
    } else {
        if (lua_type(L, -1) != LUA_TNUMBER || !((double)lua_tonumber(L, -1) >= 0.0 &&
                                                (double)lua_tonumber(L, -1) <= 86400.0))
            luaL_error(L, "calypso.purse.new: option 'write_reuse_idle' must be a number of "
                          "seconds from 0 to 86400");
        o->write_reuse_idle = (double)lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
}
