-- lockstep.lua: the timing loop of the bench's Lua contenders, and how they take COUNT.
--   require("bench.lockstep")(count, calls, now)
-- calls(n) makes n sequential calls in its own loop (no function call per call is added to
-- what is timed) and returns nothing, or the number of the call that failed and a reason
-- (the program then exits with status 1); now() is the wall clock in seconds.
--   count a number: one burst of that many calls;
--   count "-": one burst per line "N" read from stdin, until end of input (bench.lua
--   alternates a contender's bursts with its floor's, a few milliseconds apart).
-- Each burst writes one line "calls=N seconds=S cpu=C" (wall time, process CPU time).
local clock = os.clock

return function(count, calls, now)
   local function burst(n)
      local t0, c0 = now(), clock()
      local failed, why = calls(n)
      if failed then
         io.stderr:write(arg[0], ": call ", failed, " failed: ", tostring(why), "\n")
         os.exit(1)
      end
      io.stdout:write(("calls=%d seconds=%.6f cpu=%.6f\n"):format(n, now() - t0, clock() - c0))
      io.stdout:flush()
   end
   if count == "-" then
      for line in io.lines() do
         burst(assert(tonumber(line), "lockstep: a count per line"))
      end
   else
      burst(assert(tonumber(count), "usage: ... COUNT"))
   end
end
