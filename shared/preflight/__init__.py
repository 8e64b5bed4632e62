"""What a process checks before it serves: the Redis servers it relies on must never evict a key.

`eviction` is the pure verdict on a `maxmemory-policy`; `redis_policy` reads the policy of each
server and refuses to start (or warns, where the policy cannot be read).
"""
