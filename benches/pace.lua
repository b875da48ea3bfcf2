-- wrk script of benches/load.sh when PACE_RPS is set: each connection
-- waits PACE_DELAY_MS (load.sh sets it to WRK_CONNECTIONS / PACE_RPS)
-- before each request, so that every scenario runs at about the same
-- request rate and their CPU per request compare at equal batching.
local pace = tonumber(os.getenv("PACE_DELAY_MS") or "")
if pace then
    function delay()
        return pace
    end
end
