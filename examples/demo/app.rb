# frozen_string_literal: true

# The app bin/demo runs under `sidekiq -r examples/demo/app.rb`.
require "killer"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

# The second demo process recycles itself over DEMO_MAX_RSS_MB. Timings are
# shortened for the demo; the defaults are in the README.
if (limit = ENV["DEMO_MAX_RSS_MB"])
  Sidekiq.configure_server do |config|
    config.server_middleware do |chain|
      chain.add Killer::MemoryMiddleware,
                max_rss_mb: Integer(limit), grace: 1, min_uptime: 3, check_interval: 0.5, drain_timeout: 20,
                on_recycle: lambda { |reason:, rss_mb:, jobs:|
                  Sidekiq.redis { |r| r.set("demo:recycled", "#{reason}; #{rss_mb} MB; running: #{jobs.map { |j| j[:class] }.join(", ")}") }
                }
    end
  end
end

# An export that would take a minute: the kind of job people want to stop.
class ExportJob
  include Sidekiq::Job
  include Killer::Cancellable
  sidekiq_options retry: 5

  def perform(rows)
    rows.times do |i|
      sleep 0.05 # a query, an upload...
      Sidekiq.redis { |r| r.set("demo:progress:#{jid}", i + 1) }
    end
    Sidekiq.redis { |r| r.set("demo:done:#{jid}", "finished") }
  rescue => e # rubocop:disable Style/RescueStandardError
    # Well-meaning error handling: it cannot swallow Killer::Cancelled.
    Sidekiq.redis { |r| r.set("demo:done:#{jid}", "swallowed #{e.class}") }
  end
end

# Pure Ruby arithmetic: no IO, no sleep, nowhere to check a flag.
class CrunchJob
  include Sidekiq::Job
  include Killer::Cancellable

  def perform
    Sidekiq.redis { |r| r.set("demo:progress:#{jid}", "crunching") }
    n = 0
    loop { n += 1 }
  end
end

# A small job that shows the process still works.
class HelloJob
  include Sidekiq::Job

  def perform(name)
    Sidekiq.redis { |r| r.set("demo:done:#{jid}", "hello #{name} from pid #{Process.pid}") }
  end
end

# Keeps what it allocates: the leak that makes a process bloated.
class BloatJob
  include Sidekiq::Job
  LEAK = [] # rubocop:disable Style/MutableConstant

  def perform(mb)
    mb.times { LEAK << ("x" * 1_048_576) }
    Sidekiq.redis { |r| r.set("demo:done:#{jid}", "grew pid #{Process.pid} by #{mb} MB") }
  end
end

# A job that must not be cut short by a recycle: the drain waits for it.
class SlowJob
  include Sidekiq::Job

  def perform(seconds)
    Sidekiq.redis { |r| r.set("demo:progress:#{jid}", "running") }
    sleep seconds
    Sidekiq.redis { |r| r.set("demo:done:#{jid}", "finished its #{seconds} s in pid #{Process.pid}") }
  end
end
