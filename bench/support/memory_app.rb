# frozen_string_literal: true

# The Sidekiq app bench/memory_overhead.rb runs: no-op jobs under one of
# four setups (BENCH_VARIANT), with a small or ~1.5M-object live heap
# (BENCH_HEAP). The process times its own jobs and writes the result to
# Redis, so the benchmark's polling never competes with the jobs.
require "sidekiq"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

VARIANT = ENV.fetch("BENCH_VARIANT")
WARMUP = Integer(ENV.fetch("BENCH_WARMUP"))
TOTAL = WARMUP + Integer(ENV.fetch("BENCH_JOBS"))
LIMIT_MB = 2048

# Objects a big Rails app keeps alive: every full GC has to mark them.
LIVE_HEAP = ENV["BENCH_HEAP"] == "large" ? Array.new(1_500_000) { |i| "object #{i}" }.freeze : [].freeze

# The common recipe (sidekiq-worker-killer and many blog posts): after every
# job, a full GC, then read RSS from /proc/self/status.
class GcAndStatusMiddleware
  include Sidekiq::ServerMiddleware if defined?(Sidekiq::ServerMiddleware)

  def call(_worker, _job, _queue)
    yield
  ensure
    GC.start
    rss_mb = File.read("/proc/self/status")[/^VmRSS:\s+(\d+)/, 1].to_i / 1024.0
    Process.kill("TSTP", Process.pid) if rss_mb > LIMIT_MB
  end
end

# A middleware that does nothing: what Sidekiq's chain costs a job by itself.
class EmptyMiddleware
  include Sidekiq::ServerMiddleware if defined?(Sidekiq::ServerMiddleware)

  def call(_worker, _job, _queue)
    yield
  end
end

case VARIANT
when "none"
  nil
when "empty"
  Sidekiq.configure_server do |config|
    config.server_middleware { |chain| chain.add EmptyMiddleware }
  end
when "killer"
  require "killer"
  Sidekiq.configure_server do |config|
    config.server_middleware { |chain| chain.add Killer::MemoryMiddleware, max_rss_mb: LIMIT_MB }
  end
when "gc_status"
  Sidekiq.configure_server do |config|
    config.server_middleware { |chain| chain.add GcAndStatusMiddleware }
  end
else
  raise ArgumentError, "BENCH_VARIANT must be none, empty, killer or gc_status, not #{VARIANT.inspect}"
end

# Counts finished jobs; times the ones after the warm-up, in wall-clock
# and in this process's CPU time (less noisy on a shared machine).
module Clock
  @lock = Mutex.new
  @done = 0

  def self.tick
    @lock.synchronize do
      @done += 1
      now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      cpu = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)
      @started, @cpu = now, cpu if @done == WARMUP
      next unless @done == TOTAL

      Sidekiq.redis { |r| r.set("bench:result", format("%.6f %.6f", now - @started, cpu - @cpu)) }
    end
  end
end

class NoopJob
  include Sidekiq::Worker
  sidekiq_options retry: false

  def perform(_index)
    Clock.tick
  end
end
