# frozen_string_literal: true

# How fast a cancel stops a job while pure-Ruby loops hold the GVL, with the
# GVL express lane (Ruby >= 3.3) on and off, in one run: a real `sidekiq`
# per setting runs 1, 3 or 10 CPU-bound jobs (the target is one of them),
# or 9 CPU-bound jobs beside one IO-bound target. Each sample cancels the
# target at a random moment 20-80 ms after all started; latency is from just
# before Killer.cancel to the target's `ensure`. The settings alternate
# sample by sample so drift hits both alike. While a cancel is on its way
# this script waits in BLPOP, not polling: on 2 cores its polling took a
# good part of the CPU the measured process needed. On Ruby < 3.3 both rows
# are the same code (Killer::Native::EXPRESS is false).
#
#   ruby -Ilib bench/cpu_cancel.rb          # BENCH_SAMPLES=20 BENCH_CASES=1,3,10,9+1
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "etc"
require "killer"
require_relative "support/throwaway_redis"
require_relative "support/timing"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

SAMPLES = Integer(ENV.fetch("BENCH_SAMPLES", "20"))
APP = File.expand_path("support/cpu_app.rb", __dir__)
LIB = File.expand_path("../lib", __dir__)
# [CPU-bound jobs, IO-bound target?]: "9+1" is 9 CPU-bound beside an IO-bound target.
CASES = ENV.fetch("BENCH_CASES", "1,3,10,9+1").split(",").map { |c| c.split("+").map(&:to_i).then { |cpu, io| [cpu, io.to_i] } }.freeze

include Timing


def sidekiq(url, express, queue)
  env = { "RUBYLIB" => [LIB, ENV.fetch("RUBYLIB", nil)].compact.join(":"), "REDIS_URL" => url,
          "KILLER_EXPRESS" => express ? "1" : "0" }
  Process.spawn(env, "sidekiq", "-r", APP, "-c", "10", "-q", queue, "-t", "1", out: File::NULL, err: File::NULL)
end

def push(klass, queue, count) = Array.new(count) { Sidekiq::Client.push("class" => klass, "args" => [], "queue" => queue) }

url, redis_pid = ThrowawayRedis.start
ENV["REDIS_URL"] = url
redis = Redis.new(url: url)
pids = { true => sidekiq(url, true, "on"), false => sidekiq(url, false, "off") }
rng = Random.new(7)
begin
  await("both sidekiqs to heartbeat", 60) { redis.scard("processes") == 2 }
  results = Hash.new { |h, k| h[k] = [] }
  CASES.each do |cpu, io|
    SAMPLES.times do |i|
      [true, false].rotate(i % 2).each do |express|
        queue = express ? "on" : "off"
        redis.del("bench:started", "bench:stopped")
        jobs = push("BenchCpuJob", queue, cpu)
        jobs += push("BenchIoJob", queue, 1) if io.positive?
        target = jobs.last
        await("the jobs to start", 60) { redis.llen("bench:started") == jobs.size }
        sleep(0.02 + rng.rand * 0.06)
        t0 = now
        Killer.cancel(target)
        _, at = redis.blpop("bench:stopped:#{target}", timeout: 60)
        raise "the target did not stop within 60 s" unless at

        results[[cpu, io, express]] << (Float(at) - t0) * 1000
        (jobs - [target]).each { |jid| Killer.cancel(jid) }
        await("the others to stop", 60) { redis.hlen("bench:stopped") == jobs.size }
        redis.del(jobs.map { |jid| "bench:stopped:#{jid}" })
      end
    end
    warn "  #{cpu} CPU-bound#{io.positive? ? " + 1 IO-bound target" : ""}: done"
  end

  puts "cancel -> job stopped while pure-Ruby loops hold the GVL, #{SAMPLES} samples each; " \
       "#{RUBY_DESCRIPTION.split.first(2).join(" ")}, Sidekiq #{Sidekiq::VERSION}, #{Etc.nprocessors} cores, " \
       "express lane #{Killer::Native::EXPRESS ? "built in" : "not available on this Ruby"}"
  puts
  puts "| jobs running | target | express lane | p50 ms | p90 ms | p99 ms | max ms |"
  puts "|---|---|---|---:|---:|---:|---:|"
  CASES.each do |cpu, io|
    [true, false].each do |express|
      s = results[[cpu, io, express]].sort
      label = io.positive? ? "#{cpu} CPU-bound + the target" : "#{cpu} CPU-bound"
      puts format("| %s | %s | %s | %.1f | %.1f | %.1f | %.1f |", label, io.positive? ? "IO-bound" : "CPU-bound",
                  express ? "on" : "off", percentile(s, 0.5), percentile(s, 0.9), percentile(s, 0.99), s.last)
    end
  end
ensure
  pids.each_value do |pid|
    Process.kill("TERM", pid)
    Process.wait(pid)
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end
  ThrowawayRedis.stop(redis_pid)
end
