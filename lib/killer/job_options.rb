# frozen_string_literal: true

module Killer
  # A job's deadline settings, from `sidekiq_options killer: { timeout: 300,
  # on_timeout: :discard }` (symbol or, from a job's JSON, string keys),
  # with Killer.configuration's defaults filling the gaps.
  module JobOptions
    KEYS = %w[timeout on_timeout].freeze
    ON_TIMEOUT = %i[retry discard].freeze

    module_function

    # [seconds or nil, :retry or :discard]. ArgumentError names a bad value.
    def resolve(raw, config = Killer.configuration)
      return [config.default_timeout, config.on_timeout] if raw.nil?
      raise ArgumentError, "sidekiq_options killer: must be a Hash, got #{raw.inspect}" unless raw.is_a?(Hash)

      unknown = raw.keys.map(&:to_s) - KEYS
      raise ArgumentError, "unknown sidekiq_options killer: key #{unknown.first.inspect} (known: #{KEYS.join(", ")})" if unknown.any?

      timeout = fetch(raw, "timeout") { config.default_timeout }
      on_timeout = fetch(raw, "on_timeout") { config.on_timeout }
      [Validation.setting!("default_timeout", timeout, label: "sidekiq_options killer: timeout"),
       on_timeout!(on_timeout, "sidekiq_options killer: on_timeout")]
    end

    # `value` if it is :retry or :discard; else ArgumentError naming `name`.
    def on_timeout!(value, name)
      value = value.to_sym if value.is_a?(String)
      return value if ON_TIMEOUT.include?(value)

      raise ArgumentError, "#{name} must be :retry or :discard, got #{value.inspect}"
    end

    # `raw[key]` under a String or Symbol key (a job's JSON, or
    # sidekiq_options as written), else the block's default.
    def fetch(raw, key)
      return raw[key] if raw.key?(key)
      return raw[key.to_sym] if raw.key?(key.to_sym)

      yield
    end
  end
end
