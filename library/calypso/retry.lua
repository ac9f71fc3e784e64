---@meta calypso.retry
-- LuaCATS annotations for calypso.retry (docs/reference.md, "calypso.retry").

---@class calypso.retry.Policy
---@field max_retries integer? (2)
---@field retry boolean? false turns transient retries off
---@field heal_clock_skew boolean? false turns skew healing off
---@field healed boolean? a skew retry was spent in this call

---@class calypso.retry
local retry = {}

---@param op_info { writes: boolean }
---@param err calypso.Error
---@param attempt integer
---@param policy calypso.retry.Policy?
---@return "heal"|"retry"|false action
---@return string reason
function retry.decide(op_info, err, attempt, policy) end

---@param err calypso.Error
---@return boolean
function retry.transient(err) end

---@param n integer retry number, 1-based
---@param base number
---@param max number
---@param random fun(): number a float in [0, 1)
---@return number seconds
function retry.backoff(n, base, max, random) end

---@param text string?
---@param date string?
---@param now_s number
---@return number? seconds
function retry.retry_after(text, date, now_s) end

---@param date string?
---@param now_s number
---@return number? ms
function retry.clock_offset(date, now_s) end

---@param text string?
---@return integer? epoch_s
function retry.http_date(text) end

return retry
