-- wrk script: every request is a POST carrying a 64 KiB body (the backend answers a small body).
wrk.method = "POST"
wrk.body = string.rep("x", 65536)
wrk.headers["Content-Type"] = "application/octet-stream"
