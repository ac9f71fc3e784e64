# calypso-purse: build / test / demo targets. A thin wrapper over the compiler,
# luarocks and busted; `make demo` and `make test` are all a newcomer needs.

LUA_VERSION ?= 5.4
CC          ?= cc
CFLAGS      ?= -O2 -g
WARN        := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
BASE_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden $(WARN)
MULTIARCH   := $(shell $(CC) -print-multiarch 2>/dev/null)
CURL_INCDIR ?= /usr/include/$(MULTIARCH)
LIBS        := -lcurl -lmbedcrypto

SRC := $(wildcard src/*.c)
HDR := $(wildcard src/*.h)
# The one version source: src/version.h (purse._VERSION, the User-Agent); the release
# rockspecs and CHANGELOG.md are checked against it (scripts/check-release.sh).
VERSION := $(shell sed -n 's/^\#define CALYPSO_VERSION "\(.*\)"$$/\1/p' src/version.h)

# Per-runtime headers and interpreters (Debian paths).
lua_inc_5.1 := /usr/include/lua5.1
lua_inc_5.2 := /usr/include/lua5.2
lua_inc_5.3 := /usr/include/lua5.3
lua_inc_5.4 := /usr/include/lua5.4
lua_inc_jit := /usr/include/luajit-2.1
lua_bin_5.1 := lua5.1
lua_bin_5.2 := lua5.2
lua_bin_5.3 := lua5.3
lua_bin_5.4 := lua5.4
lua_bin_jit := luajit

BUILD := build
SO     = $(BUILD)/$(1)/calypso/purse.so

.PHONY: all build deps demo test test-unit rock rock-build rock-install-mock release-check version \
        bench bench-rtt clean
all: build

deps:
	@sh scripts/install-deps.sh

build: $(call SO,$(LUA_VERSION))

$(BUILD)/%/calypso/purse.so: $(SRC) $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -I$(lua_inc_$*) -I$(CURL_INCDIR) -shared -o $@ $(SRC) $(LIBS)

# The bundled mock, then the quickstart against it.
demo: deps build
	LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='$(BUILD)/$(LUA_VERSION)/?.so;;' \
	  $(lua_bin_$(LUA_VERSION)) examples/quickstart.lua

test: deps build rock
	sh scripts/test.sh

# Proves the two dev rockspecs build and install (into build/rocks): calypso-purse (the C core
# and the Lua layer), then calypso-purse-mock (the mock modules and command), and that nothing
# loadable is left in the source tree.
ROCKS := luarocks --lua-version $(LUA_VERSION) --tree $(BUILD)/rocks
rock:
	@mkdir -p $(BUILD)
	{ $(ROCKS) make --deps-mode=none calypso-purse-scm-1.rockspec && \
	  $(ROCKS) make --deps-mode=none calypso-purse-mock-scm-1.rockspec; } \
	  >$(BUILD)/rock.log 2>&1 || { cat $(BUILD)/rock.log; exit 1; }
	@test ! -e calypso/purse.so || { echo "rock: calypso/purse.so left in the tree"; exit 1; }
	@echo "rock: calypso-purse and calypso-purse-mock installed into $(BUILD)/rocks for Lua $(LUA_VERSION)"

# Called by luarocks (calypso-purse's build.type "make") with its LUA_INCDIR, CFLAGS and the
# external dependencies' directories: one compiler run, no objects, the module at a path no
# package.cpath reaches (build/rock/purse.so), installed as calypso/purse.so.
rock-build:
	@mkdir -p $(BUILD)/rock
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -I$(LUA_INCDIR) -I$(CURL_INCDIR) \
	  $(if $(MBEDTLS_INCDIR),-I$(MBEDTLS_INCDIR)) -shared -o $(BUILD)/rock/purse.so $(SRC) \
	  $(if $(CURL_LIBDIR),-L$(CURL_LIBDIR)) $(if $(MBEDTLS_LIBDIR),-L$(MBEDTLS_LIBDIR)) $(LIBS)

# Called by luarocks (calypso-purse-mock's install pass) with BINDIR and LUA (the interpreter of
# this install): the mock command under a name of its own per runtime (see the rockspec).
rock-install-mock:
	install -d $(BINDIR)
	install -m 755 bin/calypso-mock $(BINDIR)/calypso-mock-$(notdir $(LUA))

# The version every part agrees on (src/version.h).
version:
	@echo $(VERSION)

# The release rockspecs (rockspecs/*-$(VERSION)-1.rockspec) against src/version.h and
# CHANGELOG.md, then each packed as a source rock from the committed tree and installed offline
# (--deps-mode=none) into a temporary tree, where the module must load with this version and
# the installed mock command must see it in the User-Agent (scripts/check-release.sh).
release-check: build
	sh scripts/check-release.sh $(LUA_VERSION)

# Speed and memory figures against a private loopback nginx (see bench/bench.lua;
# BENCH_PAIRS, BENCH_BURST, BENCH_MEMORY_CALLS, BENCH_MEMORY_SECONDS bound it).
bench: deps build
	$(MAKE) -s build LUA_VERSION=jit
	$(CC) -std=c99 -O2 -o bench/floor bench/floor.c -I$(CURL_INCDIR) -lcurl -lmbedcrypto
	$(CC) -std=c99 -O2 -o bench/sign bench/sign.c src/sign.c -lmbedcrypto
	$(CC) -std=c99 -O2 -Wall -Wextra -o bench/rtt_proxy bench/rtt_proxy.c
	lua5.4 bench/bench.lua

# Only the RTT section of the bench: calls over HTTPS through a loopback proxy that adds a round
# trip of BENCH_RTT_MS (default 20) ms, as multiples of it (see bench/rtt.lua).
bench-rtt: deps build
	$(MAKE) -s build LUA_VERSION=jit
	$(CC) -std=c99 -O2 -Wall -Wextra -o bench/rtt_proxy bench/rtt_proxy.c
	lua5.4 bench/rtt.lua

clean:
	rm -rf $(BUILD) bench/floor bench/sign bench/rtt_proxy

# ---- Sanitizers, valgrind, fuzzing (issue 5). Each has a script, run by `make test` too.
.PHONY: sanitize valgrind fuzz fuzz-build
# The whole busted suite with the core built with ASan+UBSan into build/asan-<cc>/<runtime>/
# (scripts/sanitize.sh; SANITIZE_RUNS="5.4:clang 5.3:gcc 5.1:clang").
sanitize: deps
	sh scripts/sanitize.sh

# The busted suite under valgrind memcheck (scripts/valgrind.sh; VALGRIND_SPECS).
valgrind: deps build
	sh scripts/valgrind.sh

# libFuzzer targets (fuzz/): each runs FUZZ_SECONDS (60) from its corpus in fuzz/corpus/.
FUZZ_SECONDS ?= 60
fuzz-build:
	sh fuzz/build.sh
fuzz: deps
	sh fuzz/run.sh $(FUZZ_SECONDS)
