-- wrk script for run_bench.sh: HTTP/1.1 pipelining. Every write sends `depth`
-- GET requests back to back (wrk -s bench/wrk_pipeline.lua URL -- depth path);
-- wrk counts each response as one request. Defaults: depth 16, path /plaintext.
init = function(args)
   local depth = tonumber(args[1]) or 16
   local path = args[2] or "/plaintext"
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format(nil, path)
   end
   req = table.concat(r)
end

request = function()
   return req
end
