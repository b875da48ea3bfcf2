-- wrk script of benches/load.sh's signed scenario: replays a pool of
-- pre-signed requests (examples/signed_pool.rs writes it: raw HTTP/1.1
-- requests one after the other, each ending with an empty line), each
-- exactly once. Thread k of n takes requests k+1, k+1+n, k+1+2n, ... (a
-- disjoint slice); a thread whose slice runs out sends nothing more and
-- stops, and done() prints "signed.lua: pool exhausted" so that the
-- caller can tell (a nonce is never sent twice).
--
--   wrk -t2 -c64 -d10s -s benches/signed.lua https://127.0.0.1:PORT/ -- pool.http 2
--
-- The second argument must be wrk's -t.

-- With PACE_DELAY_MS set (load.sh's PACE_RPS), each connection waits that
-- long before each request: pace.lua, beside this file.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "pace.lua")

local threads = {}
local count = 0

function setup(thread)
    thread:set("id", count)
    count = count + 1
    table.insert(threads, thread)
end

local pool = {}
local next_index = 1
exhausted = false
used = 0
size = 0

function init(args)
    local path, n = args[1], tonumber(args[2])
    if not path or not n then
        error("signed.lua: usage: -- POOL_FILE WRK_THREADS")
    end
    local file = assert(io.open(path, "rb"))
    local data = file:read("*a")
    file:close()
    local i = 0
    for req in data:gmatch("(.-\r\n\r\n)") do
        if i % n == id then
            pool[#pool + 1] = req
        end
        i = i + 1
    end
    size = #pool
    if size == 0 then
        error("signed.lua: no request for thread " .. id .. " in " .. path)
    end
end

function request()
    if next_index > size then
        if not exhausted then
            exhausted = true
            wrk.thread:stop()
        end
        return ""
    end
    local req = pool[next_index]
    pool[next_index] = nil
    next_index = next_index + 1
    used = next_index - 1
    return req
end

function done(summary, latency, requests)
    local total_used, total_size, out = 0, 0, 0
    for _, t in ipairs(threads) do
        total_used = total_used + (t:get("used") or 0)
        total_size = total_size + (t:get("size") or 0)
        if t:get("exhausted") then
            out = out + 1
        end
    end
    io.write(string.format("signed.lua: %d of %d pooled requests taken\n", total_used, total_size))
    if out > 0 then
        io.write(string.format("signed.lua: pool exhausted in %d of %d threads\n", out, #threads))
    end
end
