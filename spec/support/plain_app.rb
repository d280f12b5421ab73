# frozen_string_literal: true

# A Sidekiq app without sidekiq-killer: the baseline for timing comparisons.
require "sidekiq"
Redis.silence_deprecations = true if defined?(Redis) && Redis.respond_to?(:silence_deprecations=)

class PlainHelloJob
  include Sidekiq::Worker

  def perform = Sidekiq.redis { |r| r.rpush("test:events", "finished:#{jid}") }
end
