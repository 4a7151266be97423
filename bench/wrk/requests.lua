-- wrk script for bench/http_bench.py: each request asks for random user ids read from a file.
--
--   wrk -t1 -c32 -d10s -s bench/wrk/requests.lua URL -- MODE IDS_FILE [TOKEN] [BOOKS]
--
-- MODE: user | users50 | seed | static | typename | mixed (95% `user`, 5% rateBook with TOKEN, a book id
-- in 1..BOOKS). `done` prints one JSON line (prefixed "WRK_JSON ") with requests, errors and
-- latency percentiles, which the harness parses. Responses are not read here (a `response`
-- callback would make wrk copy every body into Lua); the harness checks them separately.

local mode, ids, token, books

local USER_QUERY = 'query($id: ID!) { user(id: $id) { recommendations(limit: 10) { score book { id title authors } } } }'
local USERS_QUERY = 'query($ids: [ID!]!) { users(ids: $ids) { id recommendations(limit: 10) { score book { id title authors } } } }'
local RATE_QUERY = 'mutation($u: ID!, $b: ID!, $r: Int!) { rateBook(userId: $u, bookId: $b, rating: $r) { rating { rating } } }'

function init(args)
  mode = args[1] or "user"
  ids = {}
  for line in io.lines(args[2]) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  token = args[3]
  books = tonumber(args[4] or "10000")
  -- Every thread and every run draws different ids.
  math.randomseed(os.time() * 1000 + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0) % 1000)
end

local function random_id()
  return ids[math.random(#ids)]
end

local function graphql(body, headers)
  headers = headers or {}
  headers["Content-Type"] = "application/json"
  return wrk.format("POST", wrk.path, headers, body)
end

local function user_request()
  return graphql('{"query":"' .. USER_QUERY .. '","variables":{"id":"' .. random_id() .. '"}}')
end

function request()
  if mode == "user" then
    return user_request()
  elseif mode == "users50" then
    local chosen = {}
    for i = 1, 50 do chosen[i] = '"' .. random_id() .. '"' end
    return graphql('{"query":"' .. USERS_QUERY .. '","variables":{"ids":[' .. table.concat(chosen, ",") .. ']}}')
  elseif mode == "seed" then
    return wrk.format("GET", "/recommendations/" .. random_id())
  elseif mode == "static" then
    return wrk.format("GET", "/")
  elseif mode == "typename" then
    return graphql('{"query":"{ __typename }"}')
  elseif mode == "mixed" then
    if math.random(100) <= 5 then
      local variables = '{"u":"' .. random_id() .. '","b":"' .. math.random(books) .. '","r":' .. math.random(5) .. '}'
      return graphql('{"query":"' .. RATE_QUERY .. '","variables":' .. variables .. '}', {Authorization = "Bearer " .. token})
    end
    return user_request()
  end
  error("unknown mode " .. tostring(mode))
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
