# frozen_string_literal: true

# The Sidekiq app of bench/cpu_cancel.rb: jobs that burn CPU (or wait on IO)
# until cancelled, recording when they start and stop (CLOCK_MONOTONIC is
# system-wide). KILLER_EXPRESS=0 turns the GVL express lane off.
require "sidekiq"
require "killer"
Redis.silence_deprecations = true if defined?(Redis) && Redis.respond_to?(:silence_deprecations=)
Killer.configure do |c|
  c.express = ENV["KILLER_EXPRESS"] != "0"
  c.grace = 30 # one raise per cancel: the latency of the first
end

class BenchCpuJob
  include Sidekiq::Job
  include Killer::Cancellable
  sidekiq_options retry: false

  def perform
    Sidekiq.redis { |r| r.rpush("bench:started", jid) }
    x = 0
    loop { x += 1 }
  ensure
    at = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    Sidekiq.redis { |r| r.hset("bench:stopped", jid, at.to_s) }
  end
end

class BenchIoJob < BenchCpuJob
  def perform
    Sidekiq.redis { |r| r.rpush("bench:started", jid) }
    loop { sleep 0.002 }
  ensure
    at = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    Sidekiq.redis { |r| r.hset("bench:stopped", jid, at.to_s) }
  end
end
