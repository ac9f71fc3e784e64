-- lockstep.lua: how the bench's Lua contenders take their COUNT argument.
--   a number: one burst of that many calls;
--   "-": one burst per line "N" read from stdin, until end of input (bench.lua
--   alternates a contender's bursts with its floor's, a few milliseconds apart).
-- burst(n) makes n calls and writes one line "calls=N seconds=S cpu=C".
return function(count, burst)
   if count == "-" then
      for line in io.lines() do
         burst(assert(tonumber(line), "lockstep: a count per line"))
         io.stdout:flush()
      end
   else
      burst(assert(tonumber(count), "usage: ... COUNT"))
   end
end
