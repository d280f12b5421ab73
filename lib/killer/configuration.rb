# frozen_string_literal: true

module Killer
  # Killer's settings, and the per-process objects built from them.
  # Set them once, before Sidekiq starts:
  #
  #   Killer.configure do |c|
  #     c.redis = { url: ENV["KILLER_REDIS_URL"], ssl_params: { ca_file: "/etc/ssl/redis-ca.pem" } }
  #     c.poll_interval = 2
  #   end
  #
  # Every setter raises ArgumentError naming the bad value (never its
  # password).
  class Configuration
    DEFAULT_KEY_PREFIX = "killer:"
    # Settings in seconds; their defaults and ranges are the core's
    # (Native::SECONDS), read by Validation.
    SECONDS = %w[poll_interval cancel_ttl grace network_timeout hard_timeout report_interval default_timeout].freeze

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
    # Use the GVL express lane where the Ruby has it (3.3 and newer; see
    # Native::EXPRESS): a cancel or deadline makes the thread holding the
    # GVL yield it at once instead of at the end of its timeslice, so a
    # CPU-bound job stops in about a millisecond. Default true.
    attr_reader :express
    # Where Killer logs. Default: Sidekiq.logger.
    attr_writer :logger

    # Every option at its default (see the readers above).
    def initialize
      @redis = nil
      @key_prefix = DEFAULT_KEY_PREFIX
      SECONDS.each { |name| instance_variable_set("@#{name}", Validation.default(name)) }
      @on_timeout = :retry
      @exit_with_parent = false
      @express = true
      @memory_options = {}
      @memory_options_by_identity = {}.compare_by_identity
      @logger = nil
      @subscribers = [].freeze
      @client = nil
      @runtime = nil
      @lock = Mutex.new
    end

    # The Redis that holds cancels, as Killer::RedisOptions: the one set
    # here (#redis= or #redis_url=), else the Redis Sidekiq is configured
    # with (URL, path, db, credentials, ssl_params, sentinels), else
    # ENV["REDIS_URL"], else redis://localhost:6379/0.
    def redis
      @redis || SidekiqRedis.options || RedisOptions.from_env(ENV)
    end

    # Sets #redis from a Hash in the shape Sidekiq's `config.redis = {...}`
    # takes (see Killer::RedisOptions): ArgumentError naming a bad key.
    def redis=(options)
      reset { @redis = RedisOptions.new(options) }
    end

    # #redis as a URL, with the password REDACTED (for messages and logs).
    def redis_url
      redis.to_s
    end

    # Shorthand for #redis= with a redis://, rediss:// or unix:// URL.
    def redis_url=(url)
      reset { @redis = RedisOptions.from_url(url) }
    end

    # Sets #key_prefix: 1 to 200 characters, no whitespace.
    def key_prefix=(prefix)
      prefix = Validation.utf8!("key_prefix", prefix) if prefix.is_a?(String)
      unless prefix.is_a?(String) && prefix.size.between?(1, 200) && !prefix.match?(/\s/) && !prefix.match?(Validation::CONTROL)
        raise ArgumentError, "key_prefix must be a String of 1 to 200 characters without whitespace, got #{prefix.inspect}"
      end

      reset { @key_prefix = prefix.dup.freeze }
    end

    # Sets #poll_interval: 0.01 to 3600 seconds.
    def poll_interval=(seconds)
      reset { @poll_interval = Validation.setting!("poll_interval", seconds) }
    end

    # Sets #cancel_ttl: 1 second to 365 days.
    def cancel_ttl=(seconds)
      reset { @cancel_ttl = Validation.setting!("cancel_ttl", seconds) }
    end

    # Sets #grace: 0.01 to 86400 seconds.
    def grace=(seconds)
      reset { @grace = Validation.setting!("grace", seconds) }
    end

    # Sets #network_timeout: 0.01 to 600 seconds.
    def network_timeout=(seconds)
      reset { @network_timeout = Validation.setting!("network_timeout", seconds) }
    end

    # Sets #hard_timeout: 1 to 86400 seconds, or nil (never).
    def hard_timeout=(seconds)
      reset { @hard_timeout = Validation.setting!("hard_timeout", seconds) }
    end

    # Sets #report_interval: 0.1 to 3600 seconds.
    def report_interval=(seconds)
      reset { @report_interval = Validation.setting!("report_interval", seconds) }
    end

    # Sets #default_timeout: 0.001 seconds to 7 days, or nil (no deadline).
    def default_timeout=(seconds)
      reset { @default_timeout = Validation.setting!("default_timeout", seconds) }
    end

    # Sets #exit_with_parent: true or false.
    def exit_with_parent=(value)
      raise ArgumentError, "exit_with_parent must be true or false, got #{value.inspect}" unless [true, false].include?(value)

      reset { @exit_with_parent = value }
    end

    # Sets #express: true or false.
    def express=(value)
      raise ArgumentError, "express must be true or false, got #{value.inspect}" unless [true, false].include?(value)

      reset { @express = value }
    end

    # Sets #on_timeout: :retry or :discard.
    def on_timeout=(value)
      reset { @on_timeout = JobOptions.on_timeout!(value, "on_timeout") }
    end

    # Where Killer logs: the logger set, else Sidekiq.logger.
    def logger
      @logger || ::Sidekiq.logger
    end

    # Killer.subscribe's callables, frozen: read without a lock, replaced
    # whole on change.
    attr_reader :subscribers

    # Adds a subscriber (responds to call(name, payload)); returns it.
    def subscribe(callable)
      unless callable.respond_to?(:call)
        raise ArgumentError, "Killer.subscribe needs a block or a callable, got #{callable.inspect}"
      end

      @lock.synchronize { @subscribers = [*@subscribers, callable].freeze }
      callable
    end

    # Removes a subscriber Killer.subscribe returned; true if it was one.
    def unsubscribe(callable)
      @lock.synchronize do
        kept = @subscribers.reject { |s| s.equal?(callable) }
        (kept.size < @subscribers.size).tap { @subscribers = kept.freeze }
      end
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
          Native::Client.new(to_native)
        end
      end
    end

    # Every setting, as the native core takes them (one Hash). Holds the
    # Redis password: never log it.
    def to_native(redis = self.redis)
      { redis: redis.to_native, key_prefix: key_prefix, poll_interval: poll_interval, cancel_ttl: cancel_ttl,
        grace: grace, network_timeout: network_timeout, hard_timeout: hard_timeout,
        report_interval: report_interval, hostname: SidekiqInfo.hostname, express: express }
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

    # Why this process's runtime could not start (it is not tried again
    # until a setting changes), or nil.
    attr_reader :runtime_failure

    # Logs, once per process, that Redis refused a cancel's PUBLISH (the
    # cancel is recorded; the watchers' poll applies it).
    def publish_refused(why)
      return if @publish_refused

      @publish_refused = true
      Log.write(logger, :warn, nil, "cancels are recorded, but Redis refused to PUBLISH them (#{why}); running jobs " \
                                    "stop at the next poll (within poll_interval) instead of at once. Allow the " \
                                    "channel: ACL rule &#{key_prefix}* event=cancel.publish_refused")
    end

    # Logs, once per process, that the durable record of cancels met its
    # cap (Native::MAX_CANCELS) and dropped its oldest requests.
    def cancels_dropped(count)
      return if @cancels_dropped

      @cancels_dropped = true
      Log.write(logger, :warn, nil, "more than #{Native::MAX_CANCELS} cancel requests are recorded; the oldest " \
                                    "(#{count} now) were dropped, so jobs they named may run event=cancel.cap")
    end

    # Records (and logs once) why the runtime could not start.
    def runtime_failed(error)
      first = @runtime_failure.nil?
      @runtime_failure = error
      return unless first

      Log.write(logger, :error, nil, "cannot start (#{redis.redact(error.message)}); jobs run without cancellation " \
                                     "until this is fixed and the process restarts event=runtime.failed")
    end

    # The runtime if this process has started one, without starting it.
    # Asked on every job start: no native call (in a forked child the
    # parent's dispatcher thread is not alive either).
    def runtime_if_started
      rt = @runtime
      rt if rt&.alive?
    end

    # Internal: CancelMiddleware is in Sidekiq's server chain (seen at
    # boot), so MemoryMiddleware registers every job as cancellable.
    attr_accessor :cancel_middleware

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
        @runtime_failure = nil
      end
    end
  end
end
