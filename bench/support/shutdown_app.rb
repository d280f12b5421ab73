# frozen_string_literal: true

# The Sidekiq app bench/shutdown_time.rb stops: with or without the killer
# (BENCH_VARIANT), and a job that runs until Sidekiq's shutdown ends it.
require "sidekiq"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)
require "killer" if ENV.fetch("BENCH_VARIANT") == "killer"

# Sleeps in short steps (an IO-bound job), cancellable where the gem is loaded.
class BusyJob
  include Sidekiq::Worker
  include Killer::Cancellable if defined?(Killer::Cancellable)
  sidekiq_options retry: false

  def perform(seconds)
    Sidekiq.redis { |r| r.set("bench:busy", jid) }
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
    sleep 0.01 while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
  end
end
