# frozen_string_literal: true

# What Killer::MemoryMiddleware costs a real Sidekiq process, against plain
# Sidekiq and the common recipe (a full GC.start and a read of
# /proc/self/status after every job), in one run:
#   1. no-op job throughput of a real `sidekiq` process (-c 10), with a
#      small heap and with ~1.5M live objects; an empty middleware shows
#      what Sidekiq's own middleware chain costs any middleware;
#   2. the cost of one middleware pass and of one RSS read, in ns.
#
# Runs alternate between setups, so drift on the machine hits them alike;
# "vs plain" is the median of each round's ratio to the plain run next to
# it. CPU µs per job is the sidekiq process's own CPU time over the timed
# jobs: steadier than wall-clock on a shared machine.
#
#   ruby -Ilib bench/memory_overhead.rb     # BENCH_JOBS=10000 BENCH_ROUNDS=10 BENCH_CONCURRENCY=10
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "sidekiq"
require "etc"
require_relative "support/throwaway_redis"
require "killer"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

JOBS = Integer(ENV.fetch("BENCH_JOBS", "10000"))
ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "10"))
CONCURRENCY = Integer(ENV.fetch("BENCH_CONCURRENCY", "10"))
APP = File.expand_path("support/memory_app.rb", __dir__)
LIB = File.expand_path("../lib", __dir__)
# The recipe does a full GC per job: far fewer jobs give a stable figure.
RECIPE_JOBS = { "small" => [JOBS / 10, 200].max, "large" => [JOBS / 200, 30].max }.freeze
LABELS = {
  "none" => "plain Sidekiq, no middleware",
  "empty" => "an empty middleware (Sidekiq's own chain cost)",
  "killer" => "Killer::MemoryMiddleware",
  "gc_status" => "recipe: GC.start + /proc/self/status per job"
}.freeze

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

# [jobs/s, CPU µs per job] of one sidekiq process draining `jobs` no-op
# jobs (after a warm-up of a tenth as many), timed inside the process.
def throughput(url, variant, heap, jobs)
  redis = Redis.new(url: url)
  redis.flushdb
  warmup = [jobs / 10, 20].max
  Sidekiq::Client.via(Sidekiq::RedisConnection.create(url: url, size: 1)) do
    (warmup + jobs).times.each_slice(1000) do |slice|
      Sidekiq::Client.push_bulk("class" => "NoopJob", "queue" => "bench", "args" => slice.map { |i| [i] })
    end
  end
  env = { "REDIS_URL" => url, "RUBYLIB" => LIB, "BENCH_VARIANT" => variant, "BENCH_HEAP" => heap,
          "BENCH_WARMUP" => warmup.to_s, "BENCH_JOBS" => jobs.to_s }
  pid = Process.spawn(env, "sidekiq", "-r", APP, "-c", CONCURRENCY.to_s, "-q", "bench", out: File::NULL, err: File::NULL)
  deadline = now + 600
  until (result = redis.get("bench:result"))
    raise "#{variant}/#{heap}: no result within 600 s" if now > deadline

    sleep 0.2
  end
  wall, cpu = result.split.map { |v| Float(v) }
  [jobs / wall, cpu * 1e6 / jobs]
ensure
  if pid
    Process.kill("KILL", pid)
    Process.wait(pid)
  end
end

def median(values) = values.sort[values.size / 2]

def ns_per(iterations)
  GC.start
  t0 = now
  iterations.times { yield }
  (now - t0) * 1e9 / iterations
end

# In this process: what MemoryMiddleware costs a job (built per job, as
# Sidekiq 6 does; one RSS read when jobs run back to back) against what the
# recipe pays per job.
def micro(url)
  Killer.configure do |c|
    c.redis_url = url
    c.logger = Logger.new(File::NULL)
  end
  Killer.start
  # Sidekiq 6 builds a middleware per job from chain.add's options.
  options = { max_rss_mb: 2048 }
  Killer.start.enable_memory(Killer::MemoryMiddleware.new(options).options)
  job = { "class" => "NoopJob", "jid" => "0123456789abcdef01234567" }
  n = 200_000
  [
    ["Killer::MemoryMiddleware.new + #call around an empty job", ns_per(n) { Killer::MemoryMiddleware.new(options).call(nil, job, "bench") {} }],
    ["File.read('/proc/self/status') + VmRSS regex (Ruby)",
     ns_per(n / 10) { File.read("/proc/self/status")[/^VmRSS:\s+(\d+)/, 1] }],
    ["GC.start, this bench process's heap", ns_per(20) { GC.start }]
  ]
ensure
  Killer.reset!
end

url, redis_pid = ThrowawayRedis.start
begin
  runs = Hash.new { |h, k| h[k] = [] }
  %w[small large].each do |heap|
    ROUNDS.times do |round|
      order = round.even? ? %w[none empty killer] : %w[killer empty none]
      order.each { |variant| runs[[variant, heap]] << throughput(url, variant, heap, JOBS) }
    end
    runs[["gc_status", heap]] << throughput(url, "gc_status", heap, RECIPE_JOBS.fetch(heap))
    warn "  #{heap} heap: done"
  end
  micro_rows = micro(url)

  rate = ->(variant, heap) { median(runs[[variant, heap]].map(&:first)) }
  cpu = ->(variant, heap) { median(runs[[variant, heap]].map(&:last)) }
  # Round by round against the plain run beside it; the recipe ran once.
  ratio = lambda do |variant, heap|
    plain = runs[["none", heap]].map(&:first)
    median(runs[[variant, heap]].each_with_index.map { |(r, _), i| r / plain.fetch(i, rate.("none", heap)) })
  end

  puts "no-op jobs of one `sidekiq -c 10` process; #{JOBS} timed jobs per run (recipe: #{RECIPE_JOBS.values.join("/")}), " \
       "median of #{ROUNDS} alternating runs (recipe: 1); sidekiq #{Sidekiq::VERSION}, " \
       "#{RUBY_DESCRIPTION.split.first(2).join(" ")}, #{Etc.nprocessors} cores"
  puts
  puts "| setup | small heap: jobs/s | vs plain | CPU µs/job | ~1.5M live objects: jobs/s | vs plain | CPU µs/job |"
  puts "|---|---:|---:|---:|---:|---:|---:|"
  LABELS.each do |variant, label|
    cells = %w[small large].flat_map do |heap|
      [format("%.0f", rate.(variant, heap)), format("%.3fx", ratio.(variant, heap)), format("%.1f", cpu.(variant, heap))]
    end
    puts "| #{label} | #{cells.join(" | ")} |"
  end
  puts
  puts "| per-job work, measured in one Ruby process | ns |"
  puts "|---|---:|"
  micro_rows.each { |label, ns| puts "| #{label} | #{format("%.0f", ns)} |" }
  puts
  puts "every run, jobs/s (the spread is the machine's noise):"
  runs.each { |(v, h), r| puts "- #{v}, #{h} heap: #{r.map { |x| x.first.round }.join(", ")}" }
ensure
  ThrowawayRedis.stop(redis_pid)
end
