# frozen_string_literal: true

# The Sidekiq app of bench/cpu_cancel.rb: jobs that burn CPU (or wait on IO)
# until cancelled, recording when they start and stop (CLOCK_MONOTONIC is
# system-wide; the stop also in a list of its own, which the bench waits on
# with BLPOP). KILLER_EXPRESS=0 turns the GVL express lane off.
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
    stopped
  end

  def stopped
    at = Process.clock_gettime(Process::CLOCK_MONOTONIC).to_s
    Sidekiq.redis do |r|
      r.hset("bench:stopped", jid, at)
      r.rpush("bench:stopped:#{jid}", at)
    end
  end
end

class BenchIoJob < BenchCpuJob
  def perform
    Sidekiq.redis { |r| r.rpush("bench:started", jid) }
    loop { sleep 0.002 }
  ensure
    stopped
  end
end
