---@meta calypso.transport.ngx
-- LuaCATS annotations for calypso.transport.ngx (docs/reference.md, "calypso.transport.ngx").

---@class calypso.transport.ngx.Stats
---@field connects integer connections opened
---@field reused integer requests on a reused connection
---@field resent integer reads resent after a dead pooled connection
---@field last_reused integer getreusedtimes() of the last request's connection

---@class calypso.transport.ngx
local transport = {}

--- True inside nginx in a phase with cosockets.
---@return boolean
function transport.available() end

--- A cosocket transport for a core client (raises outside nginx, or with a proxy option).
---@param core calypso.purse.Client
---@param opts calypso.NgxOptions?
---@return calypso.transport.ngx.Transport
function transport.new(core, opts) end

---@class calypso.transport.ngx.Transport
---@field core calypso.purse.Client
---@field stats calypso.transport.ngx.Stats
local Transport = {}

--- Sends one operation; returns what the core's method would.
---@param op calypso.Operation|string
---@param payload table?
---@param deadline number? a purse.now() time
---@return any result
---@return string? message
---@return calypso.Error? err
function Transport:request(op, payload, deadline) end

return transport
