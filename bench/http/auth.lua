local token = os.getenv("SLUICE_BENCH_TOKEN")
if token then wrk.headers["Authorization"] = "Bearer " .. token end
