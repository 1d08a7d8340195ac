-- wrk: enqueue background jobs of a small JSON event; each thread stops after
-- JOBS_PER_THREAD answers (os.getenv), so a run enqueues a known number.
wrk.method = "POST"
wrk.body = '{"name":"Ada"}'
wrk.headers["Content-Type"] = "application/json"
local limit = tonumber(os.getenv("JOBS_PER_THREAD") or "5000")
local done = 0
local non202 = 0
response = function(status, headers, body)
  done = done + 1
  if status ~= 202 then non202 = non202 + 1 end
  if done >= limit then wrk.thread:stop() end
end
