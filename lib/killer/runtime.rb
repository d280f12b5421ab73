# frozen_string_literal: true

module Killer
  # Per-process runtime: the native watcher thread, the dispatcher thread,
  # and the table of running jobs the dispatcher raises into. Exactly one
  # per Sidekiq server process (Killer.configuration.runtime); none in
  # consoles or web processes.
  class Runtime
    # Starts the native watcher and the dispatcher with `config`'s settings.
    def initialize(config)
      @logger = config.logger
      redis = config.redis
      redis.warnings.each { |w| Log.write(@logger, :warn, nil, "#{redis.redact(w)} (ignored) event=redis.option_ignored") }
      @native = Native::Runtime.new(config.to_native(redis))
      Log.write(@logger, :info, nil, "using Redis at #{redis} event=redis.config")
      @memory = nil
      @jobs = {}
      @leases = {}
      @lock = Mutex.new
      @dispatcher = Dispatcher.new(@native, @jobs, @leases, @lock, @logger)
    end

    # True in a forked child, which inherits this object but not its
    # threads. Asked on every job start: answered without a syscall.
    def forked?
      @native.forked?
    end

    # False once the dispatcher thread has ended.
    def alive?
      @dispatcher.alive?
    end

    # Jobs this process is running under the killer.
    def running
      @native.running
    end

    # Starts watching memory with these MemoryOptions (once per process;
    # the first options win, as there is one process to recycle).
    def enable_memory(options)
      return if @memory

      @lock.synchronize do
        next if @memory

        @native.enable_memory(options.to_native(sidekiq_timeout: SidekiqInfo.timeout,
                                                hostname: SidekiqInfo.hostname,
                                                cannot_signal: SidekiqInfo.cannot_signal))
        @memory = options
        @dispatcher.on_recycle = options.on_recycle
      end
    end

    # Stops this process when its parent exits (Configuration#exit_with_parent).
    def exit_with_parent
      if (why = SidekiqInfo.cannot_signal)
        return Log.write(@logger, :warn, nil, "exit_with_parent is set, but #{why} event=parent.refused")
      end

      @native.exit_with_parent(SidekiqInfo.timeout + 5)
    end

    # MemoryMiddleware, as a job starts: a token for memory_job_finished.
    def memory_job_started(options, class_name, jid)
      enable_memory(options) unless @memory
      @native.memory_job_started(class_name.to_s, jid.to_s)
    end

    # MemoryMiddleware, as a job ends: records what it grew the process by.
    def memory_job_finished(token)
      @native.memory_job_finished(token)
    end

    # What Killer.memory_status returns.
    def memory_status
      bytes, soft, hard, state, busy, reason, top = @native.memory_status
      return nil unless bytes

      mb = ->(b) { (b / 1_048_576.0).round(1) }
      { rss_mb: mb.(bytes), limit_mb: mb.(soft), hard_limit_mb: hard && mb.(hard), state: state, busy: busy,
        reason: reason.empty? ? nil : reason,
        top_growers: top.map { |klass, jid, grew| { class: klass, jid: jid, grew_mb: mb.(grew) } } }
    end

    # Runs a job's body so that a cancel can stop it, and only it.
    #
    # Cancelled is deliverable only inside the body (:immediate); everywhere
    # else here it is deferred (:never), so it can never land in Sidekiq's
    # code or in the next job on this thread. The job is removed from the
    # table under the dispatcher's lock, and a raise queued just before that
    # is drained before leaving. Returns the body's value, or nil if the job
    # was cancelled (Sidekiq then acknowledges it: no retry, no Dead set).
    #
    # With a `timeout` (seconds), the body gets Killer::Timeout once it has
    # run that long; `on_timeout: :retry` raises it on to Sidekiq (a failure,
    # retried), `:discard` ends the job like a cancel.
    def run_job(ids, class_name, timeout = nil, on_timeout = :retry)
      timed_out = Thread.handle_interrupt(Cancelled => :never) do
        started = @native.job_started(ids, class_name, timeout)
        return nil if started.is_a?(String) # cancelled before it started

        job = RunningJob.new(token: started, thread: Thread.current, jid: ids.first)
        @lock.synchronize { @jobs[started] = job }
        Thread.current[:killer_job] = job
        stopped = nil
        begin
          return Thread.handle_interrupt(Cancelled => :immediate) { yield }
        rescue Cancelled => e
          raise unless e.token.nil? || e.token == started

          stopped = e
        ensure
          @lock.synchronize { @jobs.delete(started) }
          Thread.current[:killer_job] = nil
          # A deadline that fired as the body returned changes nothing: it finished.
          late = drain_pending(started)
          stopped ||= late unless late.is_a?(Timeout)
          @native.job_finished(started, stopped.instance_of?(Cancelled), ids.first)
        end
        stopped if stopped.is_a?(Timeout)
      end
      timed_out(timed_out, class_name, on_timeout) if timed_out
    end

    # Runs the block while this process holds lease `name` (Killer.exclusive).
    # LeaseLost is deliverable only inside the block; the holding is
    # unregistered under the dispatcher's lock and a raise queued at that
    # instant is drained, as for jobs.
    def exclusive(name, ttl, wait, on_lost)
      Thread.handle_interrupt(LeaseLost => :never) do
        id = take_lease(name, ttl, wait)
        return false unless id

        @lock.synchronize { @leases[id] = LeaseHolder.new(Thread.current, on_lost) }
        begin
          Thread.handle_interrupt(LeaseLost => :immediate) { yield }
        ensure
          @lock.synchronize { @leases.delete(id) }
          drain(LeaseLost) # lost as the block ended: its work is done either way
          release_lease(id, name, ttl)
        end
      end
    end

    # Stops both threads; bounded, never hangs Sidekiq's exit.
    def stop
      t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      @native.shutdown
      @dispatcher.join(1)
      ms = (Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0) * 1000
      Log.write(@logger, :info, nil, format("stopped in %.1f ms event=runtime.stopped", ms))
    end

    private

    # The drained Cancelled (or Timeout) meant for this job, if any.
    def drain_pending(token)
      e = drain(Cancelled)
      e if e && (e.token.nil? || e.token == token)
    end

    # Delivers a raise of `klass` queued for this thread, and returns it.
    # Thread.pending_interrupt?(klass) crashes Ruby 3.1.7, so ask without a
    # class and let the :immediate window deliver only `klass`.
    def drain(klass)
      return nil unless Thread.pending_interrupt?

      Thread.handle_interrupt(klass => :immediate) { Thread.pass }
      nil
    rescue klass => e
      e
    end

    LeaseHolder = Struct.new(:thread, :on_lost)

    # Tries at once; with `wait`, again every ttl/3 (at most 1 s) until
    # taken, or until `wait` seconds if it is a number.
    def take_lease(name, ttl, wait)
      deadline = wait.is_a?(Numeric) ? Process.clock_gettime(Process::CLOCK_MONOTONIC) + wait : nil
      loop do
        id = @native.lease_acquire(name, ttl)
        return id if id
        return nil unless wait
        return nil if deadline && Process.clock_gettime(Process::CLOCK_MONOTONIC) >= deadline

        sleep([ttl / 3.0, 1.0].min)
      end
    end

    # A release that fails must not hide the block's own outcome: the key
    # expires by itself within `ttl`.
    def release_lease(id, name, ttl)
      @native.lease_release(id)
    rescue Error => e
      Log.write(@logger, :warn, nil, "could not release lease #{name} (#{e.message}); it expires within #{ttl}s event=lease.release_failed")
    end

    def timed_out(error, class_name, on_timeout)
      raise error if on_timeout == :retry

      Log.write(@logger, :warn, error.jid, "#{class_name} stopped by Killer::Timeout; discarded (on_timeout: :discard) event=timeout.discarded")
      nil
    end
  end
end
