// Package storescript holds the compare-and-set script the service writes a
// session's interests with, so that the bench's floor sends Redis the very
// script the store does: a floor with a different script would measure a
// different Redis.
package storescript

import "github.com/redis/go-redis/v9"

// StoreInterests writes ARGV[3] with a TTL of ARGV[4] ms only if the key
// still holds what the caller read: absent when ARGV[1] is "absent", ARGV[2]
// otherwise; "any" writes whatever it holds (the service's write canary). On
// a conflict it returns what the key holds now, so the caller can retry
// without another read.
var StoreInterests = redis.NewScript(`
local current = redis.call('GET', KEYS[1])
local unchanged
if ARGV[1] == 'any' then unchanged = true
elseif ARGV[1] == 'absent' then unchanged = (current == false)
else unchanged = (current == ARGV[2]) end
if unchanged then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
  return {1}
end
return {0, current}
`)
