# frozen_string_literal: true

module Killer
  # Killer's settings, and the per-process objects built from them.
  # Set them once, before Sidekiq starts:
  #
  #   Killer.configure do |c|
  #     c.redis_url = ENV["KILLER_REDIS_URL"]
  #     c.poll_interval = 2
  #   end
  #
  # Every setter raises ArgumentError naming the bad value.
  class Configuration
    DEFAULT_KEY_PREFIX = "killer:"
    DEFAULT_POLL_INTERVAL = 1.0
    DEFAULT_CANCEL_TTL = 86_400.0
    DEFAULT_GRACE = 5.0
    DEFAULT_NETWORK_TIMEOUT = 3.0
    DEFAULT_HARD_TIMEOUT = 60.0
    DEFAULT_REPORT_INTERVAL = 5.0
    URL_SCHEMES = %w[redis rediss unix redis+unix].freeze

    # Prefix of every Redis key and channel the gem uses. Default "killer:".
    attr_reader :key_prefix
    # Seconds between two polls of the durable cancel record; bounds the
    # delay of a cancel whose pub/sub message was lost. Default 1.
    attr_reader :poll_interval
    # Seconds a cancel request and a job's status are kept. A job that starts
    # later than this after its cancel runs. Default 86400 (one day).
    attr_reader :cancel_ttl
    # Seconds a job may ignore Killer::Cancelled before it is raised again
    # (with a warning naming the jid). Default 5.
    attr_reader :grace
    # Connect and response timeout of every Redis call, in seconds. Default 3.
    attr_reader :network_timeout
    # Seconds a cancelled job may go on ignoring Killer::Cancelled before the
    # process recycles (quiet, drain, stop), which needs
    # Killer::MemoryMiddleware. nil: never. Default 60.
    attr_reader :hard_timeout
    # Seconds between two reports of a Sidekiq process (its running
    # cancellable jobs and its memory) for the Web tab (`require
    # "killer/web"`): one Redis SET per interval per process. Default 5.
    attr_reader :report_interval
    # Seconds a cancellable job may run before it gets Killer::Timeout, for
    # jobs without `sidekiq_options killer: { timeout: ... }`. nil: no
    # deadline. Default nil.
    attr_reader :default_timeout
    # What a Killer::Timeout does to the job: :retry (a failure; Sidekiq's
    # retries apply) or :discard (the job ends, like a cancel). Default
    # :retry; `sidekiq_options killer: { on_timeout: }` overrides it.
    attr_reader :on_timeout
    # Stop this Sidekiq process (TERM, then SIGKILL after Sidekiq's -t + 5 s)
    # when its parent process exits: for processes started by a supervisor
    # that must not outlive it. Default false.
    attr_reader :exit_with_parent
    # Where Killer logs. Default: Sidekiq.logger.
    attr_writer :logger

    # Every option at its default (see the readers above).
    def initialize
      @redis_url = nil
      @key_prefix = DEFAULT_KEY_PREFIX
      @poll_interval = DEFAULT_POLL_INTERVAL
      @cancel_ttl = DEFAULT_CANCEL_TTL
      @grace = DEFAULT_GRACE
      @network_timeout = DEFAULT_NETWORK_TIMEOUT
      @hard_timeout = DEFAULT_HARD_TIMEOUT
      @report_interval = DEFAULT_REPORT_INTERVAL
      @default_timeout = nil
      @on_timeout = :retry
      @exit_with_parent = false
      @memory_options = {}
      @memory_options_by_identity = {}.compare_by_identity
      @logger = nil
      @client = nil
      @runtime = nil
      @lock = Mutex.new
    end

    # Redis that holds cancels. Default: ENV["REDIS_URL"], then the Redis
    # Sidekiq itself is configured with, then redis://localhost:6379/0.
    def redis_url
      @redis_url || ENV.fetch("REDIS_URL", nil) || SidekiqRedis.url || "redis://localhost:6379/0"
    end

    # Sets #redis_url: a String starting with redis://, rediss://, unix:// or
    # redis+unix://.
    def redis_url=(url)
      scheme = url.is_a?(String) && url[%r{\A([a-z+]+)://}, 1]
      unless URL_SCHEMES.include?(scheme)
        raise ArgumentError, "redis_url must be a String starting with #{URL_SCHEMES.map { |s| "#{s}://" }.join(", ")}, got #{url.inspect}"
      end

      reset { @redis_url = url }
    end

    # Sets #key_prefix: 1 to 200 characters, no whitespace.
    def key_prefix=(prefix)
      unless prefix.is_a?(String) && prefix.size.between?(1, 200) && !prefix.match?(/\s/)
        raise ArgumentError, "key_prefix must be a String of 1 to 200 characters without whitespace, got #{prefix.inspect}"
      end

      reset { @key_prefix = prefix.dup.freeze }
    end

    # Sets #poll_interval: 0.01 to 3600 seconds.
    def poll_interval=(seconds)
      reset { @poll_interval = Validation.seconds!("poll_interval", seconds, min: 0.01, max: 3600) }
    end

    # Sets #cancel_ttl: 1 second to 365 days.
    def cancel_ttl=(seconds)
      reset { @cancel_ttl = Validation.seconds!("cancel_ttl", seconds, min: 1, max: 365 * 86_400) }
    end

    # Sets #grace: 0.01 to 86400 seconds.
    def grace=(seconds)
      reset { @grace = Validation.seconds!("grace", seconds, min: 0.01, max: 86_400) }
    end

    # Sets #network_timeout: 0.01 to 600 seconds.
    def network_timeout=(seconds)
      reset { @network_timeout = Validation.seconds!("network_timeout", seconds, min: 0.01, max: 600) }
    end

    # Sets #hard_timeout: 1 to 86400 seconds, or nil (never).
    def hard_timeout=(seconds)
      reset { @hard_timeout = Validation.seconds!("hard_timeout", seconds, min: 1, max: 86_400, allow_nil: true) }
    end

    # Sets #report_interval: 0.1 to 3600 seconds.
    def report_interval=(seconds)
      reset { @report_interval = Validation.seconds!("report_interval", seconds, min: 0.1, max: 3600) }
    end

    # Sets #default_timeout: 0.001 seconds to 7 days, or nil (no deadline).
    def default_timeout=(seconds)
      reset { @default_timeout = Validation.seconds!("default_timeout", seconds, min: 0.001, max: 604_800, allow_nil: true) }
    end

    # Sets #exit_with_parent: true or false.
    def exit_with_parent=(value)
      raise ArgumentError, "exit_with_parent must be true or false, got #{value.inspect}" unless [true, false].include?(value)

      reset { @exit_with_parent = value }
    end

    # Sets #on_timeout: :retry or :discard.
    def on_timeout=(value)
      reset { @on_timeout = JobOptions.on_timeout!(value, "on_timeout") }
    end

    # Where Killer logs: the logger set, else Sidekiq.logger.
    def logger
      @logger || ::Sidekiq.logger
    end

    # MemoryMiddleware's options, validated once per distinct Hash.
    def memory_options(options)
      # Sidekiq hands the same Hash to every instance: found by identity
      # first, without hashing its contents on every job. Bounded, in case
      # a caller builds a new Hash each time.
      @memory_options_by_identity[options] || @lock.synchronize do
        validated = @memory_options[options.dup.freeze] ||= MemoryOptions.new(options)
        @memory_options_by_identity[options] = validated if @memory_options_by_identity.size < 64
        validated
      end
    end

    # The console-side client (no thread). Rebuilt after fork or a change.
    def client
      @lock.synchronize do
        @client = nil if @client && @client_pid != Process.pid
        @client ||= begin
          @client_pid = Process.pid
          Native::Client.new(redis_url, key_prefix, cancel_ttl, network_timeout)
        end
      end
    end

    # This process's runtime (watcher + dispatcher), started on first use.
    # After fork the parent's is dropped and a new one starts; so is one
    # whose dispatcher thread died (killed by someone), so cancels go on.
    def runtime
      @lock.synchronize do
        if @runtime && (@runtime.forked? || !@runtime.alive?)
          @runtime.stop unless @runtime.forked?
          @runtime = nil
        end
        @runtime ||= Runtime.new(self)
      end
    end

    # The runtime if this process has started one, without starting it.
    def runtime_if_started
      rt = @runtime
      rt if rt && !rt.forked? && rt.alive?
    end

    # Stops this process's runtime (Sidekiq's shutdown does this).
    def stop_runtime
      rt = @lock.synchronize { @runtime.tap { @runtime = nil } }
      rt.stop if rt && !rt.forked?
    end

    private

    # A changed setting applies to objects built after it: drop the client
    # (cheap to rebuild). A running runtime keeps its settings until restart.
    def reset
      @lock.synchronize do
        yield
        @client = nil
      end
    end
  end
end
