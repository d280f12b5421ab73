# frozen_string_literal: true

# The application the end-to-end specs run under a real `sidekiq` process.
# Jobs report what happened to them in Redis lists the specs read.
require "killer"
require "json"
Redis.silence_deprecations = true if defined?(Redis) && Redis.respond_to?(:silence_deprecations=)

# Redis options as JSON (the specs' deployments: TLS, unix sockets,
# Sentinel), turned into what an initializer would write: ssl_params with
# a verify_mode constant and OpenSSL objects for a client certificate.
def redis_options_from_env(name)
  json = ENV.fetch(name, nil) or return nil
  options = JSON.parse(json, symbolize_names: true)
  if (ssl = options[:ssl_params])
    ssl[:verify_mode] = OpenSSL::SSL.const_get(ssl[:verify_mode]) if ssl[:verify_mode].is_a?(String)
    ssl[:cert] = OpenSSL::X509::Certificate.new(File.read(ssl[:cert])) if ssl[:cert]
    ssl[:key] = OpenSSL::PKey.read(File.read(ssl[:key])) if ssl[:key]
  end
  options
end

# KILLER_TEST_SIDEKIQ_REDIS: Sidekiq's own Redis, as `config.redis = {...}`
# in an initializer (REDIS_URL may then name another Redis, as in apps
# whose REDIS_URL is their cache).
if (sidekiq_redis = redis_options_from_env("KILLER_TEST_SIDEKIQ_REDIS"))
  Sidekiq.configure_server { |config| config.redis = sidekiq_redis }
  Sidekiq.configure_client { |config| config.redis = sidekiq_redis }
end

Killer.configure do |c|
  c.poll_interval = Float(ENV.fetch("KILLER_TEST_POLL", "1"))
  c.grace = Float(ENV.fetch("KILLER_TEST_GRACE", "1"))
  c.report_interval = Float(ENV.fetch("KILLER_TEST_REPORT", "0.5"))
  c.hard_timeout = Float(ENV["KILLER_TEST_HARD_TIMEOUT"]) if ENV["KILLER_TEST_HARD_TIMEOUT"]
  c.exit_with_parent = true if ENV["KILLER_TEST_EXIT_WITH_PARENT"]
  # KILLER_TEST_KILLER_REDIS: a Redis for Killer alone (Killer.configure).
  c.redis = redis_options_from_env("KILLER_TEST_KILLER_REDIS") if ENV["KILLER_TEST_KILLER_REDIS"]
end

# A process whose exit hangs after Sidekiq has stopped (a stuck at_exit
# hook): only a SIGKILL ends it.
at_exit { sleep 120 } if ENV["KILLER_TEST_HANG_AT_EXIT"]

# KILLER_TEST_MEMORY: MemoryMiddleware options as JSON.
if (memory = ENV["KILLER_TEST_MEMORY"])
  require "json"
  options = JSON.parse(memory, symbolize_names: true)
  options[:memory_source] = options[:memory_source].to_sym if options[:memory_source]
  options[:on_recycle] = ->(**info) { Sidekiq.redis { |r| r.set("test:on_recycle:#{Process.pid}", JSON.generate(info)) } }
  Sidekiq.configure_server do |config|
    config.server_middleware { |chain| chain.add Killer::MemoryMiddleware, **options }
  end
end

if ENV["KILLER_TEST_MIDDLEWARE"] == "1"
  Sidekiq.configure_server do |config|
    config.server_middleware { |chain| chain.add Killer::CancelMiddleware }
  end
end

module Report
  module_function

  def event(kind, jid)
    Sidekiq.redis { |r| r.rpush("test:events", "#{kind}:#{jid}") }
  end

  def stamp(key, jid)
    Sidekiq.redis { |r| r.hset("test:#{key}", jid, Process.clock_gettime(Process::CLOCK_MONOTONIC).to_s) }
  end
end

# Sleeps in small steps (an IO-bound job) until cancelled.
class SleepyJob
  include Sidekiq::Worker
  include Killer::Cancellable
  sidekiq_options retry: 3

  def perform(seconds = 30)
    Report.event("started", jid)
    deadline = Time.now + seconds
    sleep 0.01 while Time.now < deadline
    Report.event("finished", jid)
  ensure
    Report.stamp("stopped_at", jid)
  end
end

# Rescues everything a well-meaning developer would: StandardError.
class SwallowingJob
  include Sidekiq::Worker
  include Killer::Cancellable
  sidekiq_options retry: 3

  def perform
    Report.event("started", jid)
    loop do
      sleep 0.01
    rescue => e # rubocop:disable Style/RescueStandardError
      Report.event("swallowed-#{e.class}", jid)
    end
  end
end

# Burns CPU without ever sleeping or doing IO.
class CpuJob
  include Sidekiq::Worker
  include Killer::Cancellable
  sidekiq_options retry: 3

  def perform
    Report.event("started", jid)
    x = 0
    loop { x += 1 }
  end
end

# Rescues Exception and carries on: only the grace re-raise stops it.
class StubbornJob
  include Sidekiq::Worker
  include Killer::Cancellable
  sidekiq_options retry: 3

  def perform(ignore = 1)
    ignored = 0
    begin
      # Reported from inside the rescuing region: a cancel sent on seeing
      # "started" always meets the rescue.
      Report.event("started", jid) if ignored.zero?
      sleep 0.01 while true # rubocop:disable Style/InfiniteLoop
    rescue Exception => e # rubocop:disable Lint/RescueException
      raise if ignored >= ignore

      ignored += 1
      Report.event("ignored-#{e.class}", jid)
      retry
    end
  end
end

# A short job for throughput and stress; optionally sleeps a few ms.
class QuickJob
  include Sidekiq::Worker
  include Killer::Cancellable
  sidekiq_options retry: 3

  def perform(ms = 0)
    sleep(ms / 1000.0) if ms.positive?
    Report.event("finished", jid)
  end
end

# Announces its start (for a canceller to race its end), then runs `ms`.
class RaceJob
  include Sidekiq::Worker
  include Killer::Cancellable
  sidekiq_options retry: 3

  def perform(ms)
    Sidekiq.redis { |r| r.rpush("test:started", jid) }
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + (ms / 1000.0)
    Thread.pass while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
    Report.event("finished", jid)
  end
end

# No Killer::Cancellable: cancellable only through CancelMiddleware.
class PlainJob
  include Sidekiq::Worker
  sidekiq_options retry: 3

  def perform(seconds = 30)
    Report.event("started", jid)
    deadline = Time.now + seconds
    sleep 0.01 while Time.now < deadline
    Report.event("finished", jid)
  end
end

# Grows the heap by `mb` and keeps it (a leak), then stays busy `hold` seconds.
class GrowJob
  include Sidekiq::Worker
  sidekiq_options retry: false
  BALLAST = [] # rubocop:disable Style/MutableConstant

  def perform(mb, hold = 0)
    BALLAST << ("x" * (mb << 20))
    Report.event("grew-#{Process.pid}", jid)
    sleep hold
    Report.event("finished", jid)
  end
end

# Busy for `seconds`, reporting its start and its end with the pid.
class BusyJob
  include Sidekiq::Worker
  sidekiq_options retry: false

  def perform(seconds)
    Report.event("busy-started-#{Process.pid}", jid)
    deadline = Time.now + seconds
    sleep 0.02 while Time.now < deadline
    Report.event("busy-finished-#{Process.pid}", jid)
  end
end

# Makes this process ignore TERM, as a stuck process would.
class IgnoreTermJob
  include Sidekiq::Worker

  def perform
    Signal.trap("TERM", "IGNORE")
    Report.event("ignoring-term-#{Process.pid}", jid)
  end
end

# Has a 1 s deadline; a timeout is a failure Sidekiq retries (once).
class DeadlineJob < SleepyJob
  sidekiq_options retry: 1, killer: { timeout: 1 }
end

# Has a 1 s deadline; a timeout just ends it.
class DiscardedDeadlineJob < SleepyJob
  sidekiq_options retry: 1, killer: { timeout: 1, on_timeout: :discard }
end

# Ignores Killer::Cancelled (only), reporting each time; Sidekiq's own
# Shutdown gets through. Reports what it left with.
class CancelIgnoringJob
  include Sidekiq::Worker
  include Killer::Cancellable

  def perform
    Report.event("started", jid)
    loop do
      sleep 0.01
    rescue Killer::Cancelled
      Report.event("ignored-cancel", jid)
    end
  ensure
    Report.event("left-#{$!&.class}", jid)
  end
end

# Runs `seconds`, reporting its start, its end and what it left with.
class WitnessJob
  include Sidekiq::Worker
  include Killer::Cancellable

  def perform(seconds)
    Report.event("started", jid)
    sleep seconds
    Report.event("finished", jid)
  ensure
    Report.event("left-#{$!&.class}", jid)
  end
end

# Rescues the first Killer::Cancelled and returns normally: it ends on its
# own though a cancel reached it.
class ShrugJob
  include Sidekiq::Worker
  include Killer::Cancellable

  def perform
    Report.event("started", jid)
    sleep 0.01 while true # rubocop:disable Style/InfiniteLoop
  rescue Killer::Cancelled
    Report.event("shrugged", jid)
  end
end

# KILLER_TEST_NOTIFICATIONS=1: what a Rails app's metrics initializer
# would do: every "*.killer" event from ActiveSupport::Notifications, and
# every Killer.subscribe event, into Redis lists as JSON; one more
# subscriber that always raises (it must break nothing).
if ENV["KILLER_TEST_NOTIFICATIONS"] == "1"
  require "active_support"
  require "active_support/notifications"
  ActiveSupport::Notifications.subscribe(/\.killer\z/) do |name, _start, _finish, _id, payload|
    Sidekiq.redis { |r| r.rpush("test:notifications", JSON.generate([name, payload])) }
  end
  Killer.subscribe { |name, payload| Sidekiq.redis { |r| r.rpush("test:subscribed", JSON.generate([name, payload])) } }
  Killer.subscribe { |name, _payload| raise "a broken metrics client (#{name})" }
end

# Two classes for the kill switch: the one switched off, and a bystander.
class SyncJob < SleepyJob; end
class OtherJob < SleepyJob; end

# Reads a file once, in 1 MB chunks: page cache, not heap.
class PageCacheJob
  include Sidekiq::Worker
  sidekiq_options retry: false

  def perform(path)
    File.open(path, "rb") { |f| nil while f.read(1 << 20) }
    Report.event("read-#{Process.pid}", jid)
  end
end
