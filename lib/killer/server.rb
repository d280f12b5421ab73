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
          runtime = start
          runtime&.exit_with_parent if Killer.configuration.exit_with_parent
          # Memory options are options: a typo there stops the boot.
          MemoryMiddleware.boot(config)
        end
        config.on(:shutdown) { Killer.stop }
      end
    end

    # Starts the runtime; whatever goes wrong with Killer's Redis, Sidekiq
    # boots and runs jobs. Options set in Killer.configure were checked when
    # set, so what fails here is the Redis Sidekiq was given or the machine:
    # one line says what to check, jobs run without cancellation.
    def start
      Killer.start
    rescue Error, ArgumentError => e
      Killer.configuration.runtime_failed(e)
      nil
    end
  end
end
