# frozen_string_literal: true

module Killer
  # Finds the Redis URL Sidekiq is configured with, so most apps need no
  # Killer setting at all. Sidekiq 6 (redis-rb) and 7+ (redis-client) expose
  # it differently; both are feature-detected, and anything unexpected means
  # "unknown" rather than an error.
  module SidekiqRedis
    module_function

    # The URL of the Redis Sidekiq is configured with, or nil.
    def url
      ::Sidekiq.redis do |conn|
        if conn.respond_to?(:connection) && conn.connection.is_a?(Hash)
          client = conn._client
          with_auth(conn.connection[:id], client.username, client.password)
        elsif conn.respond_to?(:config) && conn.config.respond_to?(:server_url)
          cfg = conn.config
          with_auth(cfg.server_url, cfg.username, cfg.password)
        end
      end
    rescue StandardError
      nil
    end

    # `url` with the username and password Sidekiq was given separately.
    def with_auth(url, username, password)
      return url unless url && password

      require "erb"
      userinfo = "#{ERB::Util.url_encode(username.to_s)}:#{ERB::Util.url_encode(password)}@"
      url.sub(%r{\A([a-z+]+://)}) { "#{Regexp.last_match(1)}#{userinfo}" }
    end
  end
end
