# frozen_string_literal: true

# A Sidekiq process's memory and job-start cost while a storm of cancels
# for jobs it does not run arrives (a script cancelling a whole batch, a
# loop gone wrong): 150,000 requests from 4 processes, as fast as Redis
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

STORM = Integer(ENV.fetch("BENCH_STORM", "150000"))
CANCELLERS = Integer(ENV.fetch("BENCH_CANCELLERS", "4"))

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
# Records `count` requests for jids nobody runs from CANCELLERS processes,
# one round trip each, through Killer's own client; runs the block (the
# Sidekiq process's own work) until they are done. Seconds it took.
def storm(url, tag, count)
  per = count / CANCELLERS
  started = now
  pids = Array.new(CANCELLERS) do |i|
    Process.fork do
      Killer.reset!
      Killer.configure do |c|
        c.redis_url = url
        c.logger = Logger.new(File::NULL)
      end
      client = Killer.configuration.client
      per.times { |n| client.cancel("storm-#{tag}-#{i}-#{n}", "bench", "") }
      exit!(0)
    end
  end
  loops = 0
  until pids.empty?
    block_given? ? yield : sleep(0.01)
    pids.reject! { |pid| Process.waitpid(pid, Process::WNOHANG) } if ((loops += 1) % 100).zero?
  end
  sleep 2 # the watcher takes in the last messages and one more poll
  now - started
end

# 1. Memory: the process runs no job, so its RSS is the watcher's copy of
# the requests (and Ruby's steady heap). Storms of 50,000 each: past the
# cap, the copy stays at the cap.
WAVE = 50_000
memory = [["before the storm", rss_mb, native.known_cancels, *redis_facts(redis)]]
(STORM / WAVE).times do |round|
  seconds = storm(url, "m#{round}", WAVE)
  memory << ["after #{(round + 1) * WAVE} cancels (#{seconds.round(1)} s)", rss_mb, native.known_cancels, *redis_facts(redis)]
end

# 2. Job starts: no-op cancellable jobs back to back, without a storm and
# during one (a fresh Redis and runtime, as the first storm left them full).
Killer.stop
redis.flushdb
Killer.start
native = Killer.configuration.runtime.instance_variable_get(:@native)
Array.new(2_000) { one_job } # warm up
quiet = []
t0 = now
quiet << one_job while now - t0 < 10
during = []
seconds = storm(url, "j", STORM) { during << one_job }
jobs = [["no storm (#{quiet.size} jobs in 10 s)", *stats(quiet)],
        ["during #{STORM} cancels (#{during.size} jobs in #{seconds.round(1)} s)", *stats(during)]]

puts "Memory of a Sidekiq process, and of Redis, as #{STORM} cancels for unknown jids arrive:"
puts
puts "| | RSS (MB) | requests kept in the process | durable record (entries) | Redis keys | Redis used (MB) |"
puts "|---|---|---|---|---|---|"
memory.each { |label, rss, keep, zcard, keys, used| puts format("| %s | %.1f | %d | %d | %d | %.1f |", label, rss, keep, zcard, keys, used) }
puts
puts "A no-op Killer::Cancellable job, start to end, in the same process:"
puts
puts "| | p50 (µs) | p99 (µs) | max (µs) |"
puts "|---|---|---|---|"
jobs.each { |label, p50, p99, max| puts format("| %s | %.1f | %.1f | %.0f |", label, p50, p99, max) }
puts
puts "Cap: #{Killer::Native::MAX_CANCELS} requests (Killer::Native::MAX_CANCELS), in Redis and in each process; " \
     "#{CANCELLERS} canceller processes; #{Etc.nprocessors} CPUs, #{RUBY_DESCRIPTION.split.first(2).join(" ")}, Sidekiq #{Sidekiq::VERSION}"
Killer.stop
ThrowawayRedis.stop(redis_pid)
