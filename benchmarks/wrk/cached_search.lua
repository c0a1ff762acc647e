-- The cached-search load of issue 20 and DESIGN.md's budget: one search POSTed over and over, so every
-- answer after the first comes from the caches. wrk counts every answer as a request served, a 429 from
-- Envoy's rate limit (LIKEOPT_RATE_LIMIT_RPS) included, so the answers are also counted by status and
-- printed at the end: a figure is only the mesh's when they are all 200.
--
--   wrk -t2 -c16 -d15s --latency -s benchmarks/wrk/cached_search.lua http://127.0.0.1:8080/api/v1/search

wrk.method = "POST"
wrk.body = '{"query": "vitamin D deficiency and bone density", "top_k": 10}'
wrk.headers["Content-Type"] = "application/json"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      totals[status] = (totals[status] or 0) + count
    end
  end
  for status, count in pairs(totals) do
    io.write(string.format("answers with status %d: %d\n", status, count))
  end
end
