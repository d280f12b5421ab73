# frozen_string_literal: true

# A stand-in for a Sidekiq process: `concurrency` processor threads, each
# running one busy job after another under one design, until cancelled.
#   ruby bench/support/worker.rb DESIGN io|cpu CONCURRENCY REDIS_URL
require "redis"
require "securerandom"
require "logger"
require_relative "designs"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

design_name, kind, concurrency, url = ARGV
concurrency = Integer(concurrency)
def os_threads = Dir.children("/proc/self/task").size

base_ruby = Thread.list.size
base_os = os_threads
design = Designs::ALL.fetch(design_name).new(url)
design.start_worker

body = {
  "io" => -> { loop { sleep 0.005 } },
  "cpu" => -> { x = 0; loop { x += 1 } } # rubocop:disable Style/Semicolon
}.fetch(kind)

concurrency.times do
  Thread.new do
    redis = Redis.new(url: url)
    loop do
      jid = SecureRandom.hex(12)
      redis.rpush("bench:running", jid)
      design.run(jid) do
        body.call
      ensure
        redis.rpush("bench:stopped", "#{jid} #{Process.clock_gettime(Process::CLOCK_MONOTONIC)}")
      end
    end
  end
end

sleep 1
# Threads the design adds beyond the `concurrency` processor threads.
Redis.new(url: url).set("bench:threads", [Thread.list.size - base_ruby - concurrency, os_threads - base_os - concurrency].join(" "))
sleep
