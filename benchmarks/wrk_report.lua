-- Cycles through the URLs in the file named by env WRK_URLS and prints a JSON summary line.
local urls = {}
local counter = 0

function init(args)
  local path = os.getenv("WRK_URLS")
  for line in io.lines(path) do
    -- wrk sends the path as given: strip scheme and host so the request line is origin-form.
    local path = line:gsub("^https?://[^/]+", "")
    if #path > 0 then urls[#urls + 1] = path end
  end
  counter = math.random(1, #urls)
end

function request()
  counter = counter % #urls + 1
  return wrk.format("GET", urls[counter])
end

function done(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "errors": %d, "non2xx": %d, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "mean_ms": %.3f, "bytes": %d}\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.mean / 1000, summary.bytes))
end
