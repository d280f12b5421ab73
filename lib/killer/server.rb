# frozen_string_literal: true

module Killer
  # Sidekiq lifecycle hooks. `configure_server` runs its block only inside a
  # Sidekiq server process, so consoles and web processes start nothing.
  # Both Sidekiq 6 (the Sidekiq module) and 7+ (Sidekiq::Config) answer `on`.
  module Server
    module_function

    # Hooks Sidekiq's startup and shutdown events (once).
    def install
      ::Sidekiq.configure_server do |config|
        config.on(:startup) do
          runtime = Killer.start
          runtime.exit_with_parent if Killer.configuration.exit_with_parent
          MemoryMiddleware.boot(config)
        end
        config.on(:shutdown) { Killer.stop }
      end
    end
  end
end
