# frozen_string_literal: true

require "sidekiq/web"
require_relative "../killer"
require_relative "web/format"
require_relative "web/style"
require_relative "web/overview"
require_relative "web/extension"

module Killer
  # The "Killer" tab in Sidekiq's Web UI:
  #
  #   # config/routes.rb (or config.ru), where Sidekiq::Web is mounted
  #   require "killer/web"
  #
  # It lists the cancellable jobs running across the cluster with a Cancel
  # button (and a confirmation step), the recent cancels with their
  # outcome, and each process's memory, limit, recycle state, top growers
  # and recycle history. Processes report every `report_interval`.
  module Web
    TAB = "Killer"
    INDEX = "killer"

    # Registers the tab with Sidekiq::Web, through whichever extension API
    # this Sidekiq has (feature-detected, not version-matched): the config
    # `Sidekiq::Web.configure` yields (8.x: `register_extension`; 8.0.0 and
    # 7.3.7: `register`), 7.3's `register(klass, name:, tab:, index:)`, or
    # 6.x/7.0's `register(klass)` plus `tabs`. `require "killer/web"` calls
    # it once.
    def self.install(web = ::Sidekiq::Web)
      options = { name: "killer", tab: TAB, index: INDEX }
      if web.respond_to?(:configure)
        web.configure do |config|
          if config.respond_to?(:register_extension)
            config.register_extension(Extension, **options)
          elsif config.respond_to?(:register)
            config.register(Extension, **options)
          else
            register(web, options)
          end
        end
      else
        register(web, options)
      end
      true
    end

    # Sidekiq 7.3's keyword `register`, or 6.x/7.0's `register` + `tabs`.
    def self.register(web, options)
      if web.method(:register).parameters.any? { |_, name| name == :tab }
        web.register(Extension, **options)
      else
        web.register(Extension)
        web.tabs[TAB] = INDEX
      end
    end
    private_class_method :register
  end
end

Killer::Web.install
