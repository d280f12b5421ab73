# frozen_string_literal: true

# The kill switch against its baseline, in one run: a real `sidekiq` (20
# threads) runs 10 BenchSyncJobs and 10 BenchOtherJobs; each round stops
# every BenchSyncJob either with one Killer.cancel_class call, or — what an
# operator does without it, jids in hand — with 10 Killer.cancel calls.
# Latency per job is from just before the first call to the job's
# `ensure`; the rounds alternate so that drift hits both alike. Also
# counted: BenchOtherJobs stopped (must be 0) and, during a switch, 100
# BenchSyncJobs enqueued whose body must never run.
#
#   ruby -Ilib bench/cancel_class.rb        # BENCH_ROUNDS=20
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "etc"
require "killer"
require "sidekiq/api"
require_relative "support/throwaway_redis"
require_relative "support/timing"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "20"))
APP = File.expand_path("support/switch_app.rb", __dir__)
LIB = File.expand_path("../lib", __dir__)

include Timing


def push(klass, count) = Array.new(count) { Sidekiq::Client.push("class" => klass, "args" => []) }

url, redis_pid = ThrowawayRedis.start
ENV["REDIS_URL"] = url
redis = Redis.new(url: url)
sidekiq = Process.spawn({ "RUBYLIB" => LIB, "REDIS_URL" => url }, "sidekiq", "-r", APP, "-c", "20", "-t", "2",
                        out: File::NULL, err: File::NULL)
begin
  await("sidekiq to heartbeat") { redis.smembers("processes").any? }
  results = { switch: [], each: [] }
  lasts = { switch: [], each: [] }
  bystanders = { switch: 0, each: 0 }
  skipped_ran = 0
  ROUNDS.times do |round|
    %i[switch each].rotate(round % 2).each do |mode|
      redis.del("bench:started", "bench:stopped")
      sync = push("BenchSyncJob", 10)
      other = push("BenchOtherJob", 10)
      await("20 jobs to start") { redis.llen("bench:started") == 20 }
      t0 = now
      if mode == :switch
        Killer.cancel_class("BenchSyncJob", for: 60, by: "bench")
      else
        sync.each { |jid| Killer.cancel(jid, by: "bench") }
      end
      stops = await("the 10 jobs to stop") do
        at = redis.hmget("bench:stopped", *sync)
        at.all? && at.map { |s| (Float(s) - t0) * 1000 }
      end
      results[mode].concat(stops)
      lasts[mode] << stops.max
      if mode == :switch && round.zero?
        queued = push("BenchSyncJob", 100)
        await("the 100 to be skipped", 60) { Sidekiq::Queue.new.size.zero? && queued.all? { |j| Killer.status(j) == :cancelled } }
        skipped_ran += (redis.lrange("bench:started", 0, -1) & queued).size
      end
      Killer.resume_class("BenchSyncJob") if mode == :switch
      bystanders[mode] += redis.hmget("bench:stopped", *other).compact.size
      other.each { |jid| Killer.cancel(jid) }
      await("the bystanders to stop") { redis.hmget("bench:stopped", *other).all? }
    end
  end

  puts "stop every running job of one class: 10 IO-bound jobs of it and 10 of another running in one " \
       "sidekiq (20 threads), #{ROUNDS} rounds each; #{RUBY_DESCRIPTION.split.first(2).join(" ")}, " \
       "Sidekiq #{Sidekiq::VERSION}, #{Etc.nprocessors} cores"
  puts
  puts "| how | calls | per job p50 ms | per job p99 ms | max ms | last of the 10, p50 ms | other class stopped |"
  puts "|---|---:|---:|---:|---:|---:|---:|"
  { switch: ["Killer.cancel_class", 1], each: ["Killer.cancel per jid (baseline)", 10] }.each do |mode, (label, calls)|
    s = results[mode].sort
    l = lasts[mode].sort
    puts format("| %s | %d | %.1f | %.1f | %.1f | %.1f | %d |", label, calls, percentile(s, 0.5), percentile(s, 0.99),
                s.last, percentile(l, 0.5), bystanders[mode])
  end
  puts
  puts "100 BenchSyncJobs enqueued during a switch: #{100 - skipped_ran} skipped before their body, #{skipped_ran} ran."
ensure
  Process.kill("TERM", sidekiq)
  Process.wait(sidekiq)
  ThrowawayRedis.stop(redis_pid)
end
