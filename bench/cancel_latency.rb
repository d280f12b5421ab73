# frozen_string_literal: true

# Cancel -> job-stopped latency, Redis cost and threads, for sidekiq-killer
# and two baselines, in one run:
#   (a) thread-per-job: a watcher thread per job polls `DEL key` every
#       100 ms, then Thread#kill (the naive recipe);
#   (b) pub/sub only: one subscriber thread, a registry, Thread#raise on a
#       message; fast but not durable (the fastest peer design).
# The canceller is this process (like a Rails console); the jobs run in a
# separate worker process. CLOCK_MONOTONIC is system-wide, so the latency is
# from just before the cancel call to the job body's `ensure`.
#
#   ruby -Ilib bench/cancel_latency.rb            # BENCH_SAMPLES=300 by default
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "redis"
require "etc"
require_relative "support/throwaway_redis"
require_relative "support/designs"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

SAMPLES = Integer(ENV.fetch("BENCH_SAMPLES", "300"))
CPU_SAMPLES = [SAMPLES / 3, 20].max
WORKER = File.expand_path("support/worker.rb", __dir__)
LIB = File.expand_path("../lib", __dir__)

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

def with_worker(url, design, kind, concurrency)
  redis = Redis.new(url: url)
  redis.flushdb
  pid = Process.spawn({ "RUBYLIB" => LIB }, "ruby", WORKER, design, kind, concurrency.to_s, url)
  sleep 0.05 until redis.get("bench:threads")
  yield redis
ensure
  Process.kill("KILL", pid)
  Process.wait(pid)
end

def percentile(sorted, p) = sorted[[(sorted.size * p).ceil - 1, 0].max]

# Cancels `samples` running jobs, each at a random moment of its run.
def latencies(url, design_name, kind, concurrency, samples)
  canceller = Designs::ALL.fetch(design_name).new(url)
  rng = Random.new(42)
  with_worker(url, design_name, kind, concurrency) do |redis|
    Array.new(samples) do
      _, jid = redis.blpop("bench:running", timeout: 10)
      sleep(0.02 + rng.rand * 0.08)
      t0 = now
      canceller.cancel(jid)
      loop do
        _, line = redis.blpop("bench:stopped", timeout: 10)
        raise "#{design_name}: job #{jid} was not stopped" unless line

        stopped, at = line.split
        break (Float(at) - t0) * 1000 if stopped == jid
      end
    end.sort
  end
end

# Redis commands per second the design costs with `concurrency` busy jobs
# and no cancel at all: everything Redis processed, less our two INFO calls.
def idle_cost(url, design_name, concurrency, seconds: 5)
  with_worker(url, design_name, "io", concurrency) do |redis|
    sleep 1
    before = redis.info("stats")["total_commands_processed"].to_i
    sleep seconds
    after = redis.info("stats")["total_commands_processed"].to_i
    threads = redis.get("bench:threads").split.map(&:to_i)
    [(after - before - 1) / seconds.to_f, *threads]
  end
end

url, redis_pid = ThrowawayRedis.start
begin
  rows = Designs::ALL.map do |name, klass|
    io = latencies(url, name, "io", 10, SAMPLES)
    cpu = latencies(url, name, "cpu", 1, CPU_SAMPLES)
    cost, ruby_threads, os_threads = idle_cost(url, name, 10)
    warn "  #{klass.label}: done"
    [klass.label, percentile(io, 0.5), percentile(io, 0.99), percentile(cpu, 0.5), percentile(cpu, 0.99),
     cost, ruby_threads, os_threads, klass.durable]
  end

  puts "cancel -> job stopped, #{SAMPLES} IO-bound samples (10 busy jobs), #{CPU_SAMPLES} CPU-bound samples " \
       "(1 busy pure-Ruby loop); #{RUBY_DESCRIPTION.split.first(2).join(" ")}, #{Etc.nprocessors rescue "?"} cores" # rubocop:disable Style/RescueModifier
  puts
  puts "| design | IO p50 ms | IO p99 ms | CPU p50 ms | CPU p99 ms | Redis cmds/s, 10 busy jobs | extra Ruby threads | extra OS threads | durable |"
  puts "|---|---:|---:|---:|---:|---:|---:|---:|---|"
  rows.each do |label, *nums, durable|
    cells = nums.each_with_index.map { |v, i| i < 4 ? format("%.1f", v) : (i == 4 ? format("%.1f", v) : v.to_s) }
    puts "| #{label} | #{cells.join(" | ")} | #{durable} |"
  end
ensure
  ThrowawayRedis.stop(redis_pid)
end
