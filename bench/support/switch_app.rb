# frozen_string_literal: true

# The Sidekiq app of bench/cancel_class.rb: two classes of IO-bound jobs
# that record when they start and when they stop (CLOCK_MONOTONIC is
# system-wide, so the benchmark compares it with its own).
require "sidekiq"
require "killer"
Redis.silence_deprecations = true if defined?(Redis) && Redis.respond_to?(:silence_deprecations=)
Killer.configure { |c| c.grace = 30 }

class BenchSyncJob
  include Sidekiq::Job
  include Killer::Cancellable
  sidekiq_options retry: false

  def perform
    Sidekiq.redis { |r| r.rpush("bench:started", jid) }
    loop { sleep 0.002 }
  ensure
    at = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    Sidekiq.redis { |r| r.hset("bench:stopped", jid, at.to_s) }
  end
end

class BenchOtherJob < BenchSyncJob; end
