# frozen_string_literal: true

# The app bin/demo runs under `sidekiq -r examples/demo/app.rb`.
require "killer"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

# An export that would take a minute: the kind of job people want to stop.
class ExportJob
  include Sidekiq::Worker
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
  include Sidekiq::Worker
  include Killer::Cancellable

  def perform
    Sidekiq.redis { |r| r.set("demo:progress:#{jid}", "crunching") }
    n = 0
    loop { n += 1 }
  end
end

# A small job that shows the process still works.
class HelloJob
  include Sidekiq::Worker

  def perform(name)
    Sidekiq.redis { |r| r.set("demo:done:#{jid}", "hello #{name} from pid #{Process.pid}") }
  end
end
