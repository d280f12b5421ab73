# frozen_string_literal: true

# A Sidekiq process's memory and job-start cost while a storm of cancels
# for jobs it does not run arrives (a script cancelling a whole batch, a
# loop gone wrong): 100,000 requests from 4 processes, as fast as Redis
# takes them. This process is the Sidekiq process: its watcher learns every
# request (pub/sub and poll) while it runs no-op cancellable jobs back to
# back, timing each one. Compared with the same jobs before the storm.
#
#   ruby -Ilib bench/cancel_storm.rb        # BENCH_STORM=100000 BENCH_CANCELLERS=4
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "killer"
require "logger"
require "etc"
require_relative "support/throwaway_redis"

STORM = Integer(ENV.fetch("BENCH_STORM", "100000"))
CANCELLERS = Integer(ENV.fetch("BENCH_CANCELLERS", "4"))
BASELINE_JOBS = 20_000

class NoopJob
  include Sidekiq::Job
  include Killer::Cancellable

  def perform = nil
end

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
def rss_mb = File.read("/proc/self/statm").split[1].to_i * 4096 / 1_048_576.0
def percentile(sorted, p) = sorted[[(sorted.size * p).ceil - 1, 0].max]

# Times one no-op job through Killer's wrapper, in microseconds.
def one_job
  job = NoopJob.new
  job.jid = "bench-#{rand(1 << 60).to_s(16)}"
  t0 = now
  job.perform
  (now - t0) * 1_000_000
end

def stats(times)
  sorted = times.sort
  [percentile(sorted, 0.5), percentile(sorted, 0.99), sorted.last]
end

def redis_facts(redis)
  used = redis.info("memory")["used_memory"].to_i / 1_048_576.0
  [redis.zcard("killer:v1:cancels"), redis.dbsize, used]
end

url, redis_pid = ThrowawayRedis.start
redis = Redis.new(url: url)
Killer.configure do |c|
  c.redis_url = url
  c.logger = Logger.new(File::NULL)
end
native = Killer.start.instance_variable_get(:@native)
warm = Array.new(2_000) { one_job } && nil
rss_before = rss_mb
baseline = stats(Array.new(BASELINE_JOBS) { one_job })
facts_before = redis_facts(redis)

# The storm: each canceller records STORM / CANCELLERS requests for jids
# nobody runs, one round trip each, through Killer's own client.
per = STORM / CANCELLERS
started = now
cancellers = Array.new(CANCELLERS) do |i|
  Process.fork do
    Killer.reset!
    Killer.configure do |c|
      c.redis_url = url
      c.logger = Logger.new(File::NULL)
    end
    client = Killer.configuration.client
    per.times { |n| client.cancel("storm-#{i}-#{n}", "bench", "") }
    exit!(0)
  end
end
during = []
during << one_job while cancellers.any? { |pid| Process.waitpid(pid, Process::WNOHANG).nil? }
storm_s = now - started
# Let the watcher take in the last messages and one more poll.
sleep 2
rss_after = rss_mb
kept = native.known_cancels
facts_after = redis_facts(redis)
during_stats = stats(during)

rows = [
  ["before (#{BASELINE_JOBS} jobs)", *baseline, rss_before, 0, *facts_before],
  ["during #{STORM} cancels (#{during.size} jobs, #{storm_s.round(1)} s)", *during_stats, rss_after, kept, *facts_after]
]
puts "| | no-op job p50 (µs) | p99 (µs) | max (µs) | RSS (MB) | requests kept in the process | durable record (entries) | Redis keys | Redis used (MB) |"
puts "|---|---|---|---|---|---|---|---|---|"
rows.each do |label, p50, p99, max, rss, keep, zcard, keys, used|
  puts format("| %s | %.1f | %.1f | %.0f | %.1f | %d | %d | %d | %.1f |", label, p50, p99, max, rss, keep, zcard, keys, used)
end
puts
puts "Cap: #{Killer::Native::MAX_CANCELS} requests (Killer::Native::MAX_CANCELS), in Redis and in each process; " \
     "#{Etc.nprocessors} CPUs, #{RUBY_DESCRIPTION.split.first(2).join(" ")}, Sidekiq #{Sidekiq::VERSION}"
Killer.stop
ThrowawayRedis.stop(redis_pid)
