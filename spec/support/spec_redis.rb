# frozen_string_literal: true

# The specs' own Redis client, on whichever library the running Sidekiq
# brings: redis-client (Sidekiq 7 and 8) or redis-rb (Sidekiq 6, which no
# longer ships with 7+). Only what the specs use, with redis-rb's answers
# (booleans for EXISTS/HEXISTS, a Hash for INFO), so a spec reads the same
# on every leg of bin/matrix.
class SpecRedis
  # `options` as both libraries take them: url:, path:, ssl_params:,
  # password:, username:, timeout:.
  def initialize(**options)
    @conn =
      if defined?(::RedisClient) && options[:sentinels]
        ::RedisClient.sentinel(**options).new_client
      elsif defined?(::RedisClient)
        ::RedisClient.config(**options).new_client
      else
        require "redis"
        ::Redis.silence_deprecations = true if ::Redis.respond_to?(:silence_deprecations=)
        ::Redis.new(**options)
      end
  end

  def call(*args)
    @conn.call(*args.map { |a| a.is_a?(Symbol) ? a.to_s : a })
  end

  def close = @conn.close

  # Each call queued in the block, sent as one pipeline; their answers.
  def pipelined
    @conn.pipelined { |pipe| yield Pipeline.new(pipe) }
  end

  # The block's `p.hget(...)` calls, queued on a pipeline.
  class Pipeline
    def initialize(pipe) = (@pipe = pipe)
    def hget(key, field) = @pipe.call("HGET", key, field)
    def call(*args) = @pipe.call(*args)
  end

  def ping = call("PING")
  def get(key) = call("GET", key)
  def hget(key, field) = call("HGET", key, field)
  def hexists(key, field) = call("HEXISTS", key, field) == 1
  def exists?(key) = call("EXISTS", key).positive?
  def lrange(key, from, to) = call("LRANGE", key, from, to)
  def llen(key) = call("LLEN", key)
  def lindex(key, index) = call("LINDEX", key, index)
  def rpush(key, value) = call("RPUSH", key, value)

  # [key, value] once one arrives, or nil after `timeout` seconds.
  def blpop(key, timeout:)
    return @conn.blpop(key, timeout: timeout) unless defined?(::RedisClient) && @conn.is_a?(::RedisClient)

    @conn.blocking_call(timeout + 1, "BLPOP", key, timeout)
  end
  def smembers(key) = call("SMEMBERS", key)
  def zcard(key) = call("ZCARD", key)
  def pttl(key) = call("PTTL", key)
  def dbsize = call("DBSIZE")
  def flushall = call("FLUSHALL")

  # SET with redis-rb's keywords for the expiry options the specs use.
  def set(key, value, px: nil, ex: nil)
    args = ["SET", key, value]
    args += ["PX", px] if px
    args += ["EX", ex] if ex
    call(*args)
  end

  # ["channel", count] as PUBSUB NUMSUB answers.
  def pubsub(subcommand, *args) = call("PUBSUB", subcommand, *args)

  # INFO's fields as a Hash, as redis-rb returns them.
  def info(section = nil)
    text = section ? call("INFO", section) : call("INFO")
    text.lines.map(&:chomp).reject { |l| l.empty? || l.start_with?("#") }.to_h { |l| l.split(":", 2) }
  end
end
