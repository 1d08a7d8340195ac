-- wrk: POST a small JSON event, as a function client would.
wrk.method = "POST"
wrk.body = '{"name":"Ada"}'
wrk.headers["Content-Type"] = "application/json"
