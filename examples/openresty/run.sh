#!/bin/sh
# Runs examples/openresty against the bundled mock, on 127.0.0.1 only:
#   sh examples/openresty/run.sh
# Builds the C core for LuaJIT (build/jit), starts the mock and a private nginx with this
# directory's nginx.conf (in a prefix under /tmp, on a free port), asks it for a deposit
# address twice, subscribes its webhook location at the mock and makes a deposit (the mock
# delivers signed events; nginx confirms the terminal one with transaction/get from a timer),
# posts a hand-signed webhook (twice, then with a bad signature) and stops everything. Exits non-zero when an answer is not what it should be.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
make -s build LUA_VERSION=jit

prefix=$(mktemp -d /tmp/calypso-example.XXXXXX)
chmod 755 "$prefix"               # nginx workers run as nobody and must read it
mkdir -p "$prefix/logs" "$prefix/t/logs"
ln -s "$root/lua" "$prefix/lua"
ln -s "$root/build/jit" "$prefix/lib"
ln -s "$here" "$prefix/app"
nginx_pid=""
mock_pid=""
cleanup() {
  set +e   # a process that is already gone must not stop the clean-up
  [ -n "$nginx_pid" ] && kill -TERM "$nginx_pid" 2>/dev/null
  [ -n "$mock_pid" ] && kill -TERM "$mock_pid" 2>/dev/null
  sleep 0.3
  rm -rf "$prefix"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() {
  lua5.4 -e 'local s = require("socket").bind("127.0.0.1", 0) local _, p = s:getsockname() s:close() print(p)'
}

# nginx.conf as shipped passes `nginx -t` in a private prefix that holds nothing but logs/
if out=$(nginx -t -p "$prefix/t/" -c "$here/nginx.conf" 2>&1); then
  echo "ok   nginx -t -p <prefix> -c examples/openresty/nginx.conf"
else
  echo "FAIL nginx -t on examples/openresty/nginx.conf:"; echo "$out"; exit 1
fi

# The mock, with its own lifetime so that it can never outlive this script for long.
export CALYPSO_API_KEY=example-key
export CALYPSO_API_SECRET=example-secret
export CALYPSO_ACCOUNT=0x00000000000000000000000000000000000000aa
export CALYPSO_WEBHOOK_SECRET=example-webhook-secret
lua5.4 "$root/bin/calypso-mock" --quiet --lifetime 120 --key "$CALYPSO_API_KEY" \
  --secret "$CALYPSO_API_SECRET" --account "$CALYPSO_ACCOUNT" >"$prefix/mock.out" 2>&1 &
mock_pid=$!
i=0
until grep -q '^LISTENING' "$prefix/mock.out" 2>/dev/null; do
  i=$((i + 1)); [ $i -le 100 ] || { echo "the mock did not start"; cat "$prefix/mock.out"; exit 1; }
  sleep 0.05
done
export CALYPSO_BASE_URL="http://127.0.0.1:$(sed -n 's/^LISTENING //p' "$prefix/mock.out")"

# nginx with this nginx.conf, on a free port instead of 8080
port=$(free_port)
sed "s/127\.0\.0\.1:8080/127.0.0.1:$port/" "$here/nginx.conf" >"$prefix/nginx.conf"
nginx -p "$prefix/" -e "$prefix/logs/error.log" -c "$prefix/nginx.conf" -g 'daemon off;' \
  </dev/null >/dev/null 2>&1 &
nginx_pid=$!
parent=$$
( i=0; while [ $i -lt 120 ] && kill -0 "$parent" && kill -0 "$nginx_pid"; do sleep 1; i=$((i + 1)); done
  kill -TERM "$nginx_pid" ) </dev/null >/dev/null 2>&1 &
i=0
until curl -s -o /dev/null "http://127.0.0.1:$port/healthz"; do
  i=$((i + 1)); [ $i -le 100 ] || { echo "nginx did not start"; cat "$prefix/logs/error.log"; exit 1; }
  sleep 0.05
done
url="http://127.0.0.1:$port"
echo "nginx on $url, mock on $CALYPSO_BASE_URL"

check() {   # name, expected substring, actual
  case "$3" in
    *"$2"*) echo "ok   $1: $3" ;;
    *) echo "FAIL $1: expected $2 in: $3"; cat "$prefix/logs/error.log"; exit 1 ;;
  esac
}

req='{"externalId":"user-42","email":"alice@example.com","currency":"USDT_TRX"}'
a1=$(curl -s -X POST "$url/customers" -H 'Content-Type: application/json' -d "$req")
check "deposit address" '"address":"' "$a1"
a2=$(curl -s -X POST "$url/customers" -H 'Content-Type: application/json' -d "$req")
[ "$a1" = "$a2" ] || { echo "FAIL the same customer got another answer: $a2"; exit 1; }
echo "ok   same customer, same address"
# the calls went over cosockets: that transport's User-Agent names ngx_lua, libcurl's libcurl
ua=$(curl -s "$CALYPSO_BASE_URL/_mock/requests" | grep -o '"user-agent":"[^"]*"' | tail -n 1)
check "calls over cosockets (non-blocking)" 'ngx_lua/' "$ua"

# the mock delivers signed webhooks for a deposit to nginx
customer=$(echo "$a1" | sed -n 's/.*"customerId":"\([^"]*\)".*/\1/p')
curl -s -X POST "$CALYPSO_BASE_URL/_mock/webhooks" -H 'Content-Type: application/json' \
  -d "{\"url\":\"$url/calypso/webhook\",\"key\":\"example-hook\",\"secret\":\"$CALYPSO_WEBHOOK_SECRET\"}" >/dev/null
curl -s -X POST "$CALYPSO_BASE_URL/_mock/deposit" -H 'Content-Type: application/json' \
  -d "{\"customerId\":\"$customer\",\"currency\":\"USDT_TRX\",\"amount\":\"25.5\",\"state\":\"CONFIRMED\"}" >/dev/null
i=0
until grep -q 'confirmed: CONFIRMED' "$prefix/logs/error.log"; do
  i=$((i + 1)); [ $i -le 100 ] || break
  sleep 0.1
done
deliveries=$(curl -s "$CALYPSO_BASE_URL/_mock/webhooks/deliveries")
check "webhook delivered by the mock" '"state":"delivered"' "$deliveries"
check "deposit confirmed from a timer" 'confirmed: CONFIRMED 25.5 USDT_TRX' \
  "$(grep -o 'calypso event .*confirmed: [^,]*' "$prefix/logs/error.log" | head -n 1)"

event='{"requestId":"3fa85f64-5717-4562-b3fc-2c963f66afa6","id":7000001,"createdDate":"2025-10-30T14:08:39.96068","level":"SUCCESS","service":"CUSTOMER_PURSE","eventType":"CUSTOMER_PURSE_FUNDS_RECEIVED_FOR_PURSE","data":{"amount":25.5,"currency":"USDT_TRX"}}'
sign=$(printf '%s' "$event" | openssl dgst -sha512 -hmac "$CALYPSO_WEBHOOK_SECRET" | sed 's/^.*= //')
w1=$(curl -s -X POST "$url/calypso/webhook" -H "Sign: $sign" -H 'Key: example' -d "$event")
check "webhook" '"duplicate":false' "$w1"
w2=$(curl -s -X POST "$url/calypso/webhook" -H "Sign: $sign" -H 'Key: example' -d "$event")
check "webhook resent" '"duplicate":true' "$w2"
w3=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/calypso/webhook" -H "Sign: 00$sign" -d "$event")
check "webhook with a bad signature" 401 "$w3"
echo "openresty example: ok"
