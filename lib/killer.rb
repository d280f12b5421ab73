# frozen_string_literal: true

require "sidekiq"
require_relative "killer/version"
require_relative "killer/errors"
require_relative "killer/native"
require_relative "killer/validation"
require_relative "killer/redis_options"
require_relative "killer/sidekiq_redis"
require_relative "killer/configuration"
require_relative "killer/log"
require_relative "killer/instrumentation"
require_relative "killer/jobs"
require_relative "killer/dispatcher"
require_relative "killer/runtime"
require_relative "killer/job_options"
require_relative "killer/guard"
require_relative "killer/cancellable"
require_relative "killer/cancel_middleware"
require_relative "killer/sidekiq_info"
require_relative "killer/memory_options"
require_relative "killer/memory_middleware"
require_relative "killer/server"

# Stop a running Sidekiq job from anywhere that reaches its Redis:
#
#   Killer.cancel(jid)            # => true once recorded
#   Killer.cancel(jid, wait: 5)   # => :cancelled, or the status reached by then
#   Killer.status(jid)            # => :requested, :cancelled, :finished or nil
module Killer
  # Statuses a cancelled jid goes through.
  STATUSES = %i[requested cancelled finished].freeze

  class << self
    # Yields the configuration; see Killer::Configuration for every option.
    def configure
      yield configuration
      configuration
    end

    # The one Killer::Configuration of this process (built on first use).
    def configuration
      @configuration ||= Configuration.new
    end

    # Asks that the job `jid` (a Sidekiq jid or an ActiveJob job_id) stop.
    # The request is durable for `cancel_ttl`: a job not yet started never
    # runs its body; a running one gets Killer::Cancelled within
    # milliseconds. Returns true once recorded, or with `wait:` (seconds)
    # the status reached by then (:cancelled, :finished, :requested).
    # `by` (default: this OS user @ host) and `reason` are kept with the
    # request, written in the job's log line, shown by `status(jid,
    # verbose: true)` and in the audit trail. Raises ArgumentError for a bad
    # jid, wait, by or reason, Killer::ConnectionError if Redis is
    # unreachable. A cancel Redis recorded is never an error: if Redis
    # refuses the PUBLISH that wakes the watchers (an ACL without the
    # channel), one warning says so and their poll applies it.
    def cancel(jid, wait: nil, by: nil, reason: nil)
      jid = Validation.jid!(jid)
      wait = Validation.seconds!("wait", wait, min: 0, max: 86_400, allow_nil: true)
      by = Validation.text!("by", by || Validation.default_requester, max: Native::MAX_BY_BYTES)
      reason = Validation.text!("reason", reason || "", max: Native::MAX_REASON_BYTES)
      _, refused, dropped = configuration.client.cancel(jid, by, reason)
      configuration.publish_refused(refused) if refused
      configuration.cancels_dropped(dropped) if dropped.positive?
      Instrumentation.emit("cancel_requested", jid) { { jid: jid, by: by, reason: reason } }
      return true unless wait

      wait_for_end(jid, wait)
    end

    # Switches a whole job class off for `for` seconds (a kill switch for
    # an incident): every running job of that class across the cluster
    # gets Killer::Cancelled as a jid cancel would, and every job of that
    # class that starts before the end is skipped before its body runs
    # (acknowledged; status :cancelled). `klass` is the Sidekiq job class or
    # the ActiveJob class it wraps, as a Class or its name. Returns the end
    # (a Time). Durable, pushed at once, in the audit trail; calling it
    # again for the same class replaces the end. Raises ArgumentError for a
    # bad class, for, by or reason, or past Native::MAX_SWITCHES classes.
    def cancel_class(klass, for:, by: nil, reason: nil)
      name = Validation.class_name!(klass)
      seconds = Validation.seconds!("for", binding.local_variable_get(:for), min: 1, max: Native::MAX_SWITCH_SECONDS)
      by = Validation.text!("by", by || Validation.default_requester, max: Native::MAX_BY_BYTES)
      reason = Validation.text!("reason", reason || "", max: Native::MAX_REASON_BYTES)
      until_ms, refused = configuration.client.cancel_class(name, seconds, by, reason)
      configuration.publish_refused(refused) if refused
      Instrumentation.emit("class_cancelled") { { class: name, for: seconds, by: by, reason: reason } }
      Time.at(until_ms / 1000.0)
    end

    # Switches `klass` back on before its end; true if it was off.
    def resume_class(klass, by: nil)
      name = Validation.class_name!(klass)
      by = Validation.text!("by", by || Validation.default_requester, max: Native::MAX_BY_BYTES)
      was, refused = configuration.client.resume_class(name, by)
      configuration.publish_refused(refused) if refused
      Instrumentation.emit("class_resumed") { { class: name, by: by } }
      was
    end

    # The classes switched off now, soonest end first:
    #   [{ class: "SyncJob", until: <Time>, at: <Time>, by: "alice@web-1", reason: "partner outage" }]
    def switches
      configuration.client.switches.map do |name, until_ms, at_ms, by, reason|
        { class: name, until: Time.at(until_ms / 1000.0), at: Time.at(at_ms / 1000.0), by: by, reason: reason }
      end
    end

    # The status of a cancel request for `jid`: :requested (not yet reached
    # the job), :cancelled (the job was stopped or never started),
    # :finished (the job ended on its own first), or nil (no request known).
    # With `verbose: true`, a Hash: { state:, requested_at:, by:, reason:,
    # cancelled_at: or finished_at:, class: (once the job has ended),
    # requests: (how many times it was asked), last_by:, last_reason:,
    # last_at: (the latest repeat, if any) } (times as Time), or nil.
    def status(jid, verbose: false)
      jid = Validation.jid!(jid)
      raise ArgumentError, "verbose must be true or false, got #{verbose.inspect}" unless [true, false].include?(verbose)
      return configuration.client.status(jid)&.to_sym unless verbose

      details = configuration.client.status_details(jid)
      return nil if details.empty?

      details.to_h do |field, value|
        next [field.to_sym, value.to_sym] if field == "state"
        next [field.to_sym, Integer(value)] if field == "requests"
        next [field.to_sym, Time.at(Integer(value) / 1000.0)] if field.end_with?("_at")

        [field.to_sym, value]
      end
    end

    # Runs the block only while this process holds the exclusive lease
    # `name` in Redis:
    #
    #   Killer.exclusive("scheduler", ttl: 15) { run_scheduler_forever }
    #
    # The lease is a key with a TTL, renewed every ttl/3 by Killer's watcher
    # thread. If a renewal fails, times out or finds another holder, the
    # block gets Killer::LeaseLost at once (and with `on_lost: :exit` the
    # process also gets TERM, so a container restarts it). Released when the
    # block ends. Returns the block's value, or false when the lease is held
    # elsewhere: at once with `wait: false` (the default), after waiting
    # with `wait: true` (forever) or `wait: seconds`.
    def exclusive(name, ttl: 15, wait: false, on_lost: :raise, &block)
      raise ArgumentError, "Killer.exclusive needs a block" unless block
      unless name.is_a?(String) && !name.empty?
        raise ArgumentError, "lease name must be a String of 1 to #{Native::MAX_LEASE_NAME_BYTES} bytes, got #{name.inspect}"
      end

      name = Validation.text!("lease name", name, max: Native::MAX_LEASE_NAME_BYTES)
      ttl = Validation.seconds!("ttl", ttl, min: Native::MIN_LEASE_TTL, max: 86_400)
      unless [true, false].include?(wait) || (wait.is_a?(Numeric) && wait.real? && wait >= 0 && wait.to_f.finite?)
        raise ArgumentError, "wait must be true, false or a number of seconds, got #{wait.inspect}"
      end
      raise ArgumentError, "on_lost must be :raise or :exit, got #{on_lost.inspect}" unless %i[raise exit].include?(on_lost)

      start.exclusive(name, ttl, wait, on_lost, &block)
    end

    # Calls the block (or `callable`) with (name, payload) for each of
    # Killer's events in this process — "cancel_requested",
    # "cancel_delivered", "cancel_done", "timeout", "recycle",
    # "lease_acquired", "lease_lost" — the same events
    # ActiveSupport::Notifications gets as "<name>.killer" (payloads in the
    # README). Returns the subscriber, for Killer.unsubscribe. A subscriber
    # that raises is logged; it never breaks a job.
    def subscribe(callable = nil, &block)
      raise ArgumentError, "Killer.subscribe takes a block or a callable, not both" if callable && block

      configuration.subscribe(callable || block)
    end

    # Removes a subscriber Killer.subscribe returned; true if it was one.
    def unsubscribe(subscriber)
      configuration.unsubscribe(subscriber)
    end

    # Inside a job: defers a cancel until the block ends, for work that must
    # not stop halfway (a payment, a multi-step write).
    def critical(&block)
      Thread.handle_interrupt(Runtime::DEFER_STOPS, &block)
    end

    # Inside a job: raises Killer::Cancelled (or Killer::Timeout) now if a
    # cancel (or the job's deadline) has reached this job, even within
    # Killer.critical. A cooperative stop point for loops that want to stop
    # between items.
    def checkpoint!
      frame = Thread.current[:killer_job]
      return unless frame.is_a?(Runtime::Frame)

      stop = configuration.runtime_if_started&.stop_of(frame)
      return unless stop

      raise (stop.reason == :timeout ? Timeout : Cancelled).new(jid: stop.jid, token: frame.token)
    end

    # This process's memory as Killer::MemoryMiddleware sees it:
    #   { rss_mb:, limit_mb:, hard_limit_mb:, state:, busy:, reason:,
    #     top_growers: [{ class:, jid:, grew_mb: }, ...] }
    # `state` is :running, :over_limit, :collecting, :awaiting_permit,
    # :blocked, :draining, :stopping or :killed. nil when this process does
    # not run MemoryMiddleware.
    def memory_status
      configuration.runtime_if_started&.memory_status
    end

    # Starts this process's runtime. Sidekiq's startup event calls this;
    # jobs also start it lazily in a Sidekiq server. Outside a server (a
    # test, a custom runner) call it yourself to make jobs cancellable.
    def start
      configuration.runtime
    end

    # Stops this process's runtime; Sidekiq's shutdown event calls this.
    def stop
      @configuration&.stop_runtime
    end

    # Stops the runtime and restores every default. For test suites.
    def reset!
      stop
      @configuration = nil
    end

    # The runtime a starting job should use: started if this is a Sidekiq
    # server, nil elsewhere (a console running a job inline starts no thread).
    # A runtime that cannot start must not stop jobs: log and run unprotected.
    def job_runtime
      rt = configuration.runtime_if_started
      return rt if rt
      return nil if !::Sidekiq.server? || configuration.runtime_failure

      configuration.runtime
    rescue Error, ArgumentError => e
      configuration.runtime_failed(e)
      nil
    end

    private

    def wait_for_end(jid, wait)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + wait
      pause = 0.005
      loop do
        state = status(jid)
        return state if state != :requested
        return state if Process.clock_gettime(Process::CLOCK_MONOTONIC) >= deadline

        sleep(pause)
        # One HGET per 25 ms at most, for one console, for at most `wait`.
        pause = [pause * 2, 0.025].min
      end
    end
  end
end

Killer::Server.install
