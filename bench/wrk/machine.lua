-- Random GET /v1/machines/{id} over the ids in $IDS_FILE (one uuid per line), with a bearer token.
local path = os.getenv("IDS_FILE")
assert(path, "IDS_FILE not set")
local token = os.getenv("HOTPATCH_TOKEN")
assert(token, "HOTPATCH_TOKEN not set")
local ids = {}
for line in io.lines(path) do ids[#ids + 1] = line end
assert(#ids > 0, "no ids in " .. path)
math.randomseed(os.time() + (tonumber(string.match(tostring(ids), "0x(%x+)") or "0", 16) % 100000))
wrk.headers["Authorization"] = "Bearer " .. token
request = function()
  return wrk.format("GET", "/v1/machines/" .. ids[math.random(#ids)])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKSUM rps=%.1f p50_us=%d p99_us=%d requests=%d errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status))
end
