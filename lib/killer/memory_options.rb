# frozen_string_literal: true

require "socket"

module Killer
  # The options of `chain.add Killer::MemoryMiddleware, ...`, validated.
  # Every bad value raises ArgumentError naming the option, at boot (Killer
  # checks the middleware chain on Sidekiq's startup event).
  class MemoryOptions
    DEFAULTS = {
      max_rss_mb: nil, hard_rss_mb: nil, max_memory_percent: nil,
      grace: 60, drain_timeout: 60, shutdown_wait: 30, check_interval: 5,
      min_live_processes: 1, max_concurrent_restarts: 1, gc_before_restart: true,
      memory_source: :rss, min_uptime: 60, on_recycle: nil
    }.freeze
    SOURCES = %i[rss rss_anon pss cgroup].freeze
    # How soon a refused restart slot is asked for again.
    RETRY_EVERY = 10

    attr_reader(*DEFAULTS.keys)

    # Validates `options` (MemoryMiddleware's); ArgumentError names the bad one.
    def initialize(options)
      raise ArgumentError, "Killer::MemoryMiddleware options must be a Hash, got #{options.inspect}" unless options.is_a?(Hash)

      unknown = options.keys.map(&:to_sym) - DEFAULTS.keys
      raise ArgumentError, "unknown Killer::MemoryMiddleware option #{unknown.first.inspect} (known: #{DEFAULTS.keys.join(", ")})" if unknown.any?

      DEFAULTS.merge(options.transform_keys(&:to_sym)).each { |k, v| instance_variable_set(:"@#{k}", v) }
      validate!
      freeze
    end

    # The limit in bytes: max_rss_mb, or a share of the cgroup's limit.
    def soft_bytes
      return (max_rss_mb * 1024 * 1024).to_i if max_rss_mb

      limit, why = Native.cgroup_memory_limit
      raise ArgumentError, "max_memory_percent needs a memory cgroup limit, and this process has none: #{why}" unless limit

      (limit * max_memory_percent / 100.0).to_i
    end

    # What the native runtime needs. `sidekiq_timeout` is Sidekiq's -t.
    def to_native(sidekiq_timeout:, hostname:, cannot_signal:)
      {
        "soft_bytes" => soft_bytes, "soft_percent" => max_memory_percent&.to_f, "hard_bytes" => hard_rss_mb && (hard_rss_mb * 1024 * 1024).to_i,
        "grace" => grace.to_f, "min_uptime" => min_uptime.to_f, "drain_timeout" => drain_timeout.to_f,
        # SIGKILL never before Sidekiq's own timeout + 5 s, so it can push unfinished jobs back.
        "kill_after" => [shutdown_wait, sidekiq_timeout + 5].max.to_f,
        "gc_before_restart" => gc_before_restart, "retry_every" => RETRY_EVERY.to_f,
        "memory_source" => memory_source.to_s, "check_interval" => check_interval.to_f,
        "min_live_processes" => min_live_processes, "max_concurrent_restarts" => max_concurrent_restarts,
        "hostname" => hostname, "cannot_signal" => cannot_signal
      }
    end

    private

    def validate!
      if max_rss_mb.nil? == max_memory_percent.nil?
        raise ArgumentError, "Killer::MemoryMiddleware needs exactly one of max_rss_mb or max_memory_percent, " \
                             "got max_rss_mb: #{max_rss_mb.inspect}, max_memory_percent: #{max_memory_percent.inspect}"
      end
      number!(:max_rss_mb, 1, 10_000_000) if max_rss_mb
      number!(:max_memory_percent, 1, 100) if max_memory_percent
      if hard_rss_mb
        number!(:hard_rss_mb, 1, 10_000_000)
        raise ArgumentError, "hard_rss_mb must be above max_rss_mb (#{max_rss_mb}), got #{hard_rss_mb.inspect}" if max_rss_mb && hard_rss_mb <= max_rss_mb
      end
      { grace: [0, 86_400], drain_timeout: [0, 86_400], shutdown_wait: [0, 86_400],
        check_interval: [0.05, 3600], min_uptime: [0, 86_400] }.each { |name, (lo, hi)| number!(name, lo, hi) }
      integer!(:min_live_processes, 0)
      integer!(:max_concurrent_restarts, 1)
      raise ArgumentError, "gc_before_restart must be true or false, got #{gc_before_restart.inspect}" unless [true, false].include?(gc_before_restart)
      raise ArgumentError, "memory_source must be one of #{SOURCES.map(&:inspect).join(", ")}, got #{memory_source.inspect}" unless SOURCES.include?(memory_source)
      raise ArgumentError, "on_recycle must respond to #call, got #{on_recycle.inspect}" unless on_recycle.nil? || on_recycle.respond_to?(:call)
    end

    def number!(name, min, max)
      value = public_send(name)
      return if value.is_a?(Numeric) && value.real? && value.to_f.finite? && value >= min && value <= max

      raise ArgumentError, "#{name} must be a number between #{min} and #{max}, got #{value.inspect}"
    end

    def integer!(name, min)
      value = public_send(name)
      raise ArgumentError, "#{name} must be an Integer >= #{min}, got #{value.inspect}" unless value.is_a?(Integer) && value >= min
    end
  end
end
