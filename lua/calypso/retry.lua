-- calypso.retry: the retry policy of the Lua layer, as pure functions (no I/O, no clock, no
-- randomness of their own), so that every decision can be tested from a table.
--
--   action, reason = retry.decide(op_info, err, attempt, policy)
--   seconds        = retry.backoff(retry_number, base, max, random)
--   seconds        = retry.retry_after(err.retry_after, err.date, now_s)
--   ms             = retry.clock_offset(err.date, now_s)
--   epoch_s        = retry.http_date(text)
local M = {}

local type, tonumber, floor, min = type, tonumber, math.floor, math.min

-- Failure kinds that are transient by nature: the same request may well succeed later.
local TRANSIENT_KINDS = { connect = true, resolve = true, timeout = true, network = true }
-- HTTP statuses that say "try again later", with or without a Calypso error body.
local TRANSIENT_STATUS = { [429] = true, [502] = true, [503] = true, [504] = true }

--- True when `err` describes a transient failure: connect, resolve, timeout, network, HTTP
-- 429/502/503/504 (whatever the body) and API error 000.
function M.transient(err)
   local kind = err.kind
   if TRANSIENT_KINDS[kind] then return true end
   if (kind == "http" or kind == "api") and TRANSIENT_STATUS[err.status] then return true end
   return kind == "api" and err.code == "000"
end

--- Decides what to do after a failed attempt. Pure: same inputs, same answer.
-- op_info: { writes = boolean } (an entry of purse.operations; unknown `call` paths are writes).
-- err:     the failure table of the attempt (kind, status, code, sent, date, ...).
-- attempt: attempts made so far, this one included (1 after the first failure).
-- policy:  { max_retries = n (2), retry = false to turn transient retries off,
--            heal_clock_skew = false to turn skew healing off, healed = true once a skew retry
--            was spent in this call }.
-- Returns "heal" (learn the clock offset from err.date, then retry), "retry" (back off, then
-- retry) or false, and a short reason.
function M.decide(op_info, err, attempt, policy)
   policy = policy or {}
   if type(err) ~= "table" then return false, "no failure" end
   -- 011: the server refused the timestamp before looking at the operation, so a retry
   -- cannot apply anything twice; one retry per call, and only with a usable Date header.
   if err.kind == "api" and err.code == "011" then
      if policy.heal_clock_skew == false then return false, "clock skew healing is off" end
      if policy.healed then return false, "clock skew already healed once in this call" end
      if not M.http_date(err.date) then return false, "clock skew without a usable Date header" end
      return "heal", "clock skew"
   end
   if not M.transient(err) then return false, "not transient" end
   if policy.retry == false then return false, "retries are off" end
   -- A write may have been applied by a request whose answer was lost: resending it could
   -- create or change something twice. Only a request that provably never left is safe.
   if op_info.writes and err.sent ~= false then
      return false, "a write that may have reached the server"
   end
   local retries_used = attempt - 1 - (policy.healed and 1 or 0)
   if retries_used >= (policy.max_retries or 2) then return false, "retries exhausted" end
   return "retry", op_info.writes and "never sent" or "transient"
end

--- Exponential backoff with full jitter: a random wait in [0, min(max, base * 2^(n-1))) before
-- retry number n (1-based). `random` returns a float in [0, 1).
function M.backoff(n, base, max, random)
   return random() * min(max, base * 2 ^ (n - 1))
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
                 Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
local function days_from_civil(y, m, d)
   if m <= 2 then y = y - 1 end
   local era = floor(y / 400)
   local yoe = y - era * 400
   local mp = m > 2 and m - 3 or m + 9
   local doy = floor((153 * mp + 2) / 5) + d - 1
   local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
   return era * 146097 + doe - 719468
end

local function epoch(y, mon, d, h, mi, s)
   local m = MONTHS[mon]
   y, d, h, mi, s = tonumber(y), tonumber(d), tonumber(h), tonumber(mi), tonumber(s)
   if not m or d < 1 or d > 31 or h > 23 or mi > 59 or s > 60 then return nil end
   return days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + s
end

--- Seconds since the epoch of an HTTP date (RFC 7231 §7.1.1.1): the IMF-fixdate
-- "Sun, 06 Nov 1994 08:49:37 GMT", and the obsolete RFC 850 and asctime forms that
-- recipients must accept. Returns nil for anything else.
function M.http_date(text)
   if type(text) ~= "string" then return nil end
   local d, mon, y, h, mi, s =
      text:match("^%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
   if d then return epoch(y, mon, d, h, mi, s) end
   d, mon, y, h, mi, s = text:match("^%a+, (%d%d)%-(%a%a%a)%-(%d%d) (%d%d):(%d%d):(%d%d) GMT$")
   if d then
      y = tonumber(y)
      return epoch(y < 70 and 2000 + y or 1900 + y, mon, d, h, mi, s)
   end
   mon, d, h, mi, s, y = text:match("^%a%a%a (%a%a%a) ([ %d]%d) (%d%d):(%d%d):(%d%d) (%d%d%d%d)$")
   if mon then return epoch(y, mon, (d:gsub(" ", "")), h, mi, s) end
   return nil
end

--- Seconds to wait from a Retry-After header: delay-seconds, or an HTTP date measured
-- against the response's own Date header (so a skewed local clock does not matter) or, without
-- one, against `now_s` (local epoch seconds). nil when absent or unreadable.
function M.retry_after(text, date, now_s)
   if type(text) ~= "string" then return nil end
   local secs = text:match("^%s*(%d+)%s*$")
   if secs then return tonumber(secs) end
   local at = M.http_date(text:match("^%s*(.-)%s*$"))
   if not at then return nil end
   local wait = at - (M.http_date(date) or now_s)
   return wait > 0 and wait or 0
end

--- The clock offset in milliseconds to add to the local clock (epoch seconds `now_s`) so that
-- signed timestamps match the server's clock, from the server's Date header; nil without one.
function M.clock_offset(date, now_s)
   local server_s = M.http_date(date)
   if not server_s then return nil end
   return (server_s - now_s) * 1000
end

return M
