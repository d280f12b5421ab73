# frozen_string_literal: true

module Killer
  # Per-process runtime: the native watcher thread (Killer::Native::Watcher,
  # which holds everything about each running job), the dispatcher thread,
  # and which thread runs which job (Killer::Jobs). Exactly one per Sidekiq
  # server process (Killer.configuration.runtime); none in consoles or web
  # processes.
  class Runtime
    # A cancellable job on its thread, as Killer's wrappers pass it along:
    # the core's token, whether its body is running, and what stopped it.
    # One per job, in Thread.current[:killer_job]; a job only measured holds
    # its bare token there instead (nothing allocated) until an inner
    # wrapper arms it.
    Frame = Struct.new(:token, :in_body, :stopped)

    # Interrupt masks, frozen once (no Hash allocated per job), as Sidekiq's
    # processor keeps its own.
    DEFER_STOPS = { Cancelled => :never }.freeze
    DELIVER_STOPS = { Cancelled => :immediate }.freeze
    DEFER_LEASE_LOSS = { LeaseLost => :never }.freeze
    DELIVER_LEASE_LOSS = { LeaseLost => :immediate }.freeze

    # Starts the native watcher and the dispatcher with `config`'s settings.
    def initialize(config)
      @logger = config.logger
      redis = config.redis
      redis.warnings.each { |w| Log.write(@logger, :warn, nil, "#{redis.redact(w)} (ignored) event=redis.option_ignored") }
      @native = Native::Watcher.new(config.to_native(redis))
      Log.write(@logger, :info, nil, "using Redis at #{redis} event=redis.config")
      @memory = nil
      @jobs = Jobs.new
      @leases = {}
      @lock = Mutex.new
      @dispatcher = Dispatcher.new(@native, @jobs, @leases, @lock, @logger)
    end

    # True in a forked child, which inherits this object but not its
    # threads.
    def forked?
      @native.forked?
    end

    # False once the dispatcher thread has ended (stopped, killed, or left
    # behind by fork): a job then needs a new runtime.
    def alive?
      @dispatcher.alive?
    end

    # Jobs this process is running under Killer.
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

    # What Killer.memory_status returns.
    def memory_status
      st = @native.memory_status
      return nil unless st

      mb = ->(b) { (b / 1_048_576.0).round(1) }
      { rss_mb: mb.(st.bytes), limit_mb: mb.(st.soft), hard_limit_mb: st.hard && mb.(st.hard), state: st.state,
        busy: st.busy, reason: st.reason.empty? ? nil : st.reason,
        top_growers: st.top_growers.map { |g| { class: g.class_name, jid: g.jid, grew_mb: mb.(g.grew) } },
        cgroup: st.cgroup && cgroup_status(st.cgroup, mb) }
    end

    # Which cgroup a :cgroup reading comes from, and its numbers in MB.
    def cgroup_status(cg, mb)
      { version: cg[:version], path: cg[:dir], usage_mb: mb.(cg[:usage]), working_set_mb: mb.(cg[:working_set]),
        limit_mb: cg[:limit] && mb.(cg[:limit]), limit_path: cg[:limit_dir] }
    end

    # What is stopping the job of `frame` (a Native::Stop), or nil.
    def stop_of(frame)
      @native.stop_of(frame.token)
    end

    # The first of Killer's wrappers around a cancellable job (Killer::Guard,
    # MemoryMiddleware) registers it with the core — one native call —,
    # runs the block with stops deferred, and reports how the job ended —
    # one more. The block gets the job's Frame; the job's body runs in
    # #body, the only place a stop can land, so a stop never lands in
    # Sidekiq's code, in another middleware, or in the next job on this
    # thread. The job leaves the thread table before a raise queued at that
    # instant is drained. Returns the block's value, or nil if a cancel
    # recorded before the job started skipped it (Sidekiq then acknowledges
    # it: no retry, no Dead set).
    def run_job(ids, class_name, timeout, &block)
      Thread.handle_interrupt(DEFER_STOPS) do
        started = start(ids, class_name, timeout) { return Killer.start.run_job(ids, class_name, timeout, &block) }
        return skipped(started, class_name) if started.is_a?(String) # cancelled before it started

        frame = Frame.new(started, false, nil)
        Thread.current[:killer_job] = frame
        begin
          registered(frame) { yield frame }
        ensure
          Thread.current[:killer_job] = nil
          requested_at = @native.job_finished(started, frame.stopped.instance_of?(Cancelled))
          cancel_done(frame.stopped, ids.first, class_name, requested_at) if requested_at || frame.stopped
        end
      end
    end

    # A job a cancel may not stop (MemoryMiddleware's, for a class without
    # Killer::Cancellable): registered and reported, nothing raised into it,
    # so no thread table, no interrupt mask, and no Frame unless an inner
    # wrapper arms it (#armed): the cheapest path, taken by most jobs of a
    # process that only recycles.
    def measure(ids, class_name)
      started = begin
        @native.job_started(ids, class_name, false, nil)
      rescue ForkError # a forked child's first job: a runtime of its own
        return Killer.start.measure(ids, class_name) { yield }
      end
      thread = Thread.current
      thread[:killer_job] = started
      begin
        yield
      ensure
        armed = thread[:killer_job]
        thread[:killer_job] = nil
        if armed.is_a?(Frame) # an inner wrapper armed it
          stopped = armed.stopped
          requested_at = @native.job_finished(started, stopped.instance_of?(Cancelled))
          cancel_done(stopped, ids.first, class_name, requested_at) if requested_at || stopped
        else
          requested_at = @native.job_finished(started, false)
          cancel_done(nil, ids.first, class_name, requested_at) if requested_at
        end
      end
    end

    # An inner wrapper makes job `token`, registered by #measure only to be
    # measured, cancellable: the outer wrapper could not know (an ActiveJob
    # class inside Sidekiq's JobWrapper). From here to the block's end the
    # job has a Frame (which #measure reads as the job ends) and its thread
    # is in the table, stops deferred outside its body, as in #run_job. The
    # block gets the Frame. nil, without running the block, if a cancel
    # recorded before the body started skips it (the core has logged and
    # written that; the job then ends as measured only).
    def armed(token, ids, class_name, timeout)
      Thread.handle_interrupt(DEFER_STOPS) do
        started = @native.arm(token, ids, timeout)
        return skipped(started, class_name) if started.is_a?(String) # cancelled before its body started

        frame = Frame.new(token, false, nil)
        Thread.current[:killer_job] = frame
        registered(frame) { yield frame }
      end
    end

    # Runs a cancellable job's body: stops land here and nowhere else. A
    # Cancelled for this job ends it (nil: Sidekiq acknowledges it); a
    # Killer::Timeout goes on to Sidekiq as a failure with on_timeout
    # :retry, or ends it like a cancel with :discard.
    def body(frame, class_name, on_timeout, timeout = nil)
      return yield if frame.in_body # wrapped twice: the outer window serves

      stopped = begin
        frame.in_body = true
        return Thread.handle_interrupt(DELIVER_STOPS) { yield }
      rescue Cancelled => e
        raise unless e.token.nil? || e.token == frame.token

        frame.stopped = e
      ensure
        frame.in_body = false
      end
      timed_out(stopped, class_name, on_timeout, timeout) if stopped.is_a?(Timeout)
    end

    # Runs the block while this process holds lease `name` (Killer.exclusive).
    # LeaseLost is deliverable only inside the block; the holding is
    # unregistered under the dispatcher's lock and a raise queued at that
    # instant is drained, as for jobs.
    def exclusive(name, ttl, wait, on_lost)
      Thread.handle_interrupt(DEFER_LEASE_LOSS) do
        id = take_lease(name, ttl, wait)
        return false unless id

        Instrumentation.emit("lease_acquired") { { name: name, ttl: ttl } }
        @lock.synchronize { @leases[id] = LeaseHolder.new(Thread.current, on_lost) }
        begin
          Thread.handle_interrupt(DELIVER_LEASE_LOSS) { yield }
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

    # The core's answer to a job starting (a token, or the id of a cancel
    # recorded before it); in a forked child, whose runtime is the
    # parent's, the block's (a new runtime's).
    def start(ids, class_name, timeout)
      @native.job_started(ids, class_name, true, timeout)
    rescue ForkError
      yield
    end

    # Runs the block with the job's thread in the table; after it, no raise
    # can reach the thread, and one queued at that instant is drained.
    def registered(frame)
      @jobs.register(frame.token, Thread.current)
      yield
    ensure
      @jobs.unregister(frame.token)
      # A deadline that fired as the body returned changes nothing: it finished.
      late = drain_pending(frame.token)
      frame.stopped ||= late unless late.is_a?(Timeout)
    end

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

    # A job a cancel recorded before its start kept from running.
    def skipped(id, class_name)
      Instrumentation.emit("cancel_done", id) do
        { jid: id, class: class_name, outcome: :skipped_before_start,
          latency: Instrumentation.since(@native.requested_at(id)) }
      end
      nil
    end

    # cancel_done for a job a cancel named: `stopped` by it, or ended
    # first. A deadline is `timeout`'s.
    def cancel_done(stopped, jid, class_name, requested_at)
      outcome = case stopped
                when Timeout then nil
                when Cancelled then :cancelled
                else requested_at && :finished_first
                end
      return unless outcome

      jid = stopped.jid if stopped.is_a?(Cancelled) && stopped.jid
      Instrumentation.emit("cancel_done", jid) do
        { jid: jid, class: class_name, outcome: outcome, latency: Instrumentation.since(requested_at) }
      end
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

    def timed_out(error, class_name, on_timeout, timeout)
      Instrumentation.emit("timeout", error.jid) do
        { jid: error.jid, class: class_name, timeout: timeout, on_timeout: on_timeout }
      end
      raise error if on_timeout == :retry

      Log.write(@logger, :warn, error.jid, "#{class_name} stopped by Killer::Timeout; discarded (on_timeout: :discard) event=timeout.discarded")
      nil
    end
  end
end
