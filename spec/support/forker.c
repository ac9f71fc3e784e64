/* forker.c: fork(), _exit(), waitpid() and alarm() for the specs (Debian 12 ships no
 * lua-posix for Lua 5.4). Built by spec/support/forker.lua against the headers of the
 * interpreter under test; never part of the library. */
#include <errno.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>

static int l_fork(lua_State *L)
{
    pid_t pid = fork();
    if (pid < 0)
        return luaL_error(L, "fork failed (errno %d)", errno);
    lua_pushinteger(L, (lua_Integer)pid);
    return 1;
}

static int l_exit(lua_State *L)
{
    _exit((int)luaL_optinteger(L, 1, 0));
    return 0;
}

/* waitpid(pid) -> exit status, or 128 + signal */
static int l_waitpid(lua_State *L)
{
    int st = 0;
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return luaL_error(L, "waitpid failed (errno %d)", errno);
    }
    lua_pushinteger(L, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    return 1;
}

static int l_alarm(lua_State *L)
{
    alarm((unsigned)luaL_checkinteger(L, 1));
    return 0;
}

static int l_getpid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

int luaopen_forker(lua_State *L)
{
    lua_newtable(L);
    lua_pushcfunction(L, l_fork);
    lua_setfield(L, -2, "fork");
    lua_pushcfunction(L, l_exit);
    lua_setfield(L, -2, "_exit");
    lua_pushcfunction(L, l_waitpid);
    lua_setfield(L, -2, "waitpid");
    lua_pushcfunction(L, l_alarm);
    lua_setfield(L, -2, "alarm");
    lua_pushcfunction(L, l_getpid);
    lua_setfield(L, -2, "getpid");
    return 1;
}
