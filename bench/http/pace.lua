-- Paces each wrk connection to one request every 10 ms (about 100 req/s per connection),
-- so that `-c 11` offers ~1,000 req/s instead of as many as the server can take.
local token = os.getenv("SLUICE_BENCH_TOKEN")
if token then wrk.headers["Authorization"] = "Bearer " .. token end
function delay() return 10 end
