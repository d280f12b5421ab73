# frozen_string_literal: true

# How long a `sidekiq` process takes to exit on TERM, with and without
# sidekiq-killer loaded, in one run: idle, and with a busy job that
# outlives Sidekiq's -t timeout (so Sidekiq pushes it back and raises
# Sidekiq::Shutdown into it). The killer stops at Sidekiq's shutdown event
# and must add nothing measurable.
#
#   ruby -Ilib bench/shutdown_time.rb     # BENCH_ROUNDS=5
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "sidekiq"
require "etc"
require_relative "support/throwaway_redis"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "5"))
APP = File.expand_path("support/shutdown_app.rb", __dir__)
LIB = File.expand_path("../lib", __dir__)
TIMEOUT = 2 # sidekiq -t

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
def median(values) = values.sort[values.size / 2]

# Seconds from TERM to the process's exit.
def exit_time(url, variant, busy)
  redis = Redis.new(url: url)
  redis.flushdb
  pid = Process.spawn({ "REDIS_URL" => url, "RUBYLIB" => LIB, "BENCH_VARIANT" => variant },
                      "sidekiq", "-r", APP, "-c", "2", "-t", TIMEOUT.to_s, out: File::NULL, err: File::NULL)
  sleep 0.05 until redis.smembers("processes").any? { |id| redis.hget(id, "info")&.include?("\"pid\":#{pid}") }
  if busy
    Sidekiq::Client.via(Sidekiq::RedisConnection.create(url: url, size: 1)) { Sidekiq::Client.push("class" => "BusyJob", "args" => [60]) }
    sleep 0.05 until redis.get("bench:busy")
  end
  t0 = now
  Process.kill("TERM", pid)
  Process.wait(pid)
  pid = nil
  now - t0
ensure
  if pid
    Process.kill("KILL", pid)
    Process.wait(pid)
  end
end

url, redis_pid = ThrowawayRedis.start
begin
  runs = Hash.new { |h, k| h[k] = [] }
  ROUNDS.times do |round|
    (round.even? ? %w[plain killer] : %w[killer plain]).each do |variant|
      [false, true].each { |busy| runs[[variant, busy]] << exit_time(url, variant, busy) }
    end
  end

  puts "seconds from TERM to exit of `sidekiq -c 2 -t #{TIMEOUT}`, median (max) of #{ROUNDS} alternating runs; " \
       "sidekiq #{Sidekiq::VERSION}, #{RUBY_DESCRIPTION.split.first(2).join(" ")}, #{Etc.nprocessors} cores"
  puts
  puts "| process | idle | a busy job outliving -t |"
  puts "|---|---:|---:|"
  { "plain" => "plain Sidekiq", "killer" => "with sidekiq-killer (busy job: Killer::Cancellable)" }.each do |variant, label|
    cells = [false, true].map { |busy| r = runs[[variant, busy]]; format("%.2f (%.2f)", median(r), r.max) } # rubocop:disable Style/Semicolon
    puts "| #{label} | #{cells.join(" | ")} |"
  end
ensure
  ThrowawayRedis.stop(redis_pid)
end
