# frozen_string_literal: true

module Killer
  # Reads the Redis Sidekiq is configured with, so most apps need no Killer
  # setting at all. Sidekiq 6 (redis-rb 4: the client's options Hash) and
  # 7/8 (redis-client: its Config or SentinelConfig) are feature-detected;
  # only public readers are used, never an id string. Anything unexpected
  # means "unknown" (nil), never an error: this runs while Sidekiq boots.
  module SidekiqRedis
    module_function

    # Sidekiq's Redis as Killer::RedisOptions (lenient), or nil.
    def options
      hash = ::Sidekiq.redis { |conn| options_of(conn) }
      hash && RedisOptions.new(hash, strict: false)
    rescue StandardError
      nil
    end

    # The options Hash of one of Sidekiq's connections.
    def options_of(conn)
      client = conn.respond_to?(:_client) ? conn._client : conn
      if client.respond_to?(:options) && client.options.is_a?(Hash)
        from_redis_rb(client.options)
      elsif (config = redis_client_config(client) || redis_client_config(conn))
        from_redis_client(config)
      end
    end

    # A redis-client Config, asked only of an object whose `config` takes
    # no argument (redis-rb's `config` is the CONFIG command).
    def redis_client_config(object)
      return nil unless object.respond_to?(:config) && object.method(:config).arity.zero?

      config = object.config
      config if config.respond_to?(:ssl_params) && config.respond_to?(:db)
    end

    # redis-rb 4 (Sidekiq 6): the parsed options. With sentinels the
    # master's name is the URL's host (redis-rb replaces `host` with the
    # master's address once it has connected).
    def from_redis_rb(o)
      base = { db: o[:db], username: o[:username], password: o[:password], ssl: o[:ssl], ssl_params: o[:ssl_params] }
      return base.merge(host: o[:host], port: o[:port], path: o[:path]) unless o[:sentinels]

      name = o[:url] ? URI(o[:url]).host : nil
      base.merge(sentinels: o[:sentinels], name: name, role: o[:role])
    end

    # redis-client (Sidekiq 7/8). A SentinelConfig resolves the master when
    # asked its host: only its name and sentinels are read.
    def from_redis_client(c)
      base = { db: c.db, username: c.username, password: c.password, ssl: c.ssl, ssl_params: c.ssl_params }
      if c.respond_to?(:sentinel?) && c.sentinel?
        nodes = c.sentinels.map { |s| { host: s.host, port: s.port } }
        first = c.sentinels.first
        return base.merge(sentinels: nodes, name: c.name, sentinel_username: first&.username,
                          sentinel_password: first&.password)
      end

      base.merge(host: c.host, port: c.port, path: c.path)
    end
  end
end
