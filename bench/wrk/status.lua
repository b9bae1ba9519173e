-- GET /v1/machines/{id}/patch-status over the machines of $IDS_FILE, with a bearer token: random
-- machines, or with SWEEP=<wrk threads> every machine once (then the threads stop).
-- A line is `<uuid>` (full answers) or `<uuid> <etag>` (sent in If-None-Match: 304s while the
-- status is unchanged). Counts the 304s so the summary can tell them from full answers.
local path = os.getenv("IDS_FILE")
assert(path, "IDS_FILE not set")
local token = os.getenv("HOTPATCH_TOKEN")
assert(token, "HOTPATCH_TOKEN not set")
local ids, tags = {}, {}
for line in io.lines(path) do
  local id, tag = string.match(line, "^(%S+)%s*(.*)$")
  ids[#ids + 1] = id
  tags[#tags + 1] = tag ~= "" and tag or nil
end
assert(#ids > 0, "no ids in " .. path)
math.randomseed(os.time() + (tonumber(string.match(tostring(ids), "0x(%x+)") or "0", 16) % 100000))
local auth = "Bearer " .. token
local sweep = tonumber(os.getenv("SWEEP") or "")
local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
  thread:set("slice", #threads)
end
not_modified = 0
local next_index = nil
local function pick()
  if not sweep then return math.random(#ids) end
  -- Thread k of n takes machines k, k + n, k + 2n, …
  next_index = next_index or slice
  local i = next_index
  next_index = next_index + sweep
  if i > #ids then
    wrk.thread:stop()
    return 1
  end
  return i
end
request = function()
  local i = pick()
  local headers = { ["Authorization"] = auth }
  if tags[i] then headers["If-None-Match"] = tags[i] end
  return wrk.format("GET", "/v1/machines/" .. ids[i] .. "/patch-status", headers)
end
response = function(status)
  if status == 304 then not_modified = not_modified + 1 end
end
function done(summary, latency, requests)
  local nm = 0
  for _, t in ipairs(threads) do nm = nm + (t:get("not_modified") or 0) end
  local e = summary.errors
  -- wrk counts statuses of 400 and above only; a 304 is counted here.
  io.write(string.format("WRKSUM rps=%.1f p50_us=%d p99_us=%d requests=%d errors=%d non2xx=%d not_modified=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status, nm))
end
