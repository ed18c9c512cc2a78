-- wrk: every request asks for /page-5/<random id>, as the peers' wrk-page5.lua does with PAGE5_UNIQUE_PATH.
math.randomseed(os.time())
function request()
   return wrk.format("GET", "/page-5/" .. math.random(1, 1000000000))
end
