# frozen_string_literal: true

require "socket"

module Killer
  # What Killer needs to know about the running Sidekiq, feature-detected
  # across Sidekiq 6 (module-level options) and 7+ (Sidekiq::Config).
  module SidekiqInfo
    module_function

    # Sidekiq's shutdown timeout (-t), seconds.
    def timeout
      value =
        if ::Sidekiq.respond_to?(:default_configuration) then ::Sidekiq.default_configuration[:timeout]
        elsif ::Sidekiq.respond_to?(:options) then ::Sidekiq.options[:timeout]
        end
      value.is_a?(Numeric) ? value : 25
    end

    # The hostname Sidekiq writes in its process set.
    def hostname
      ENV["DYNO"] || Socket.gethostname
    end

    # Why this process must not signal itself, or nil. Sidekiq 7's embedded
    # mode runs inside another server (Puma): TERM to our pid would stop it.
    def cannot_signal
      return nil if defined?(::Sidekiq::CLI) && ::Sidekiq::CLI.respond_to?(:instance)

      "Sidekiq is not running as the `sidekiq` command here (embedded, or not a server); " \
        "Killer will not signal this process, which may be someone else's server"
    end
  end
end
