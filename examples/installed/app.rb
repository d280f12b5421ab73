# frozen_string_literal: true

# A sample app that uses sidekiq-killer as an installed gem (bin/test runs
# it under `sidekiq -r` with a scratch GEM_HOME, never the checkout).
require "sidekiq"
require "killer"

# Reports in Redis that it started, then works until cancelled.
class ExportJob
  include Sidekiq::Job
  include Killer::Cancellable

  def perform
    Sidekiq.redis { |r| r.set("installed:started:#{jid}", $LOADED_FEATURES.grep(%r{/killer\.so\z}).first) }
    loop { sleep 0.01 }
  ensure
    Sidekiq.redis { |r| r.set("installed:stopped:#{jid}", $!.class.name) }
  end
end
