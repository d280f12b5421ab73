# frozen_string_literal: true

module Killer
  # The one Ruby thread per process that acts on the core's events. It waits
  # inside Rust with the GVL released (costing the VM nothing), and wakes for
  # a cancel, a log line, or shutdown. Thread#kill, Ctrl-C and process exit
  # interrupt the wait at once.
  class Dispatcher
    # Upper bound of one native wait; only matters if a wake-up were lost.
    WAIT = 5.0

    # Starts the thread; Runtime owns it and shares `jobs` (Killer::Jobs),
    # and `leases` with the `lock` they are read under.
    def initialize(native, jobs, leases, lock, logger)
      @native = native
      @jobs = jobs
      @leases = leases
      @lock = lock
      @logger = logger
      @thread = Thread.new { run }
      @thread.name = "killer-dispatcher"
      @thread.report_on_exception = false
    end

    # MemoryMiddleware's on_recycle callable, if any.
    attr_writer :on_recycle

    # False once the thread has ended (stopped, or killed by someone).
    def alive?
      @thread.alive?
    end

    # Waits for the loop to leave after the native runtime sent :shutdown.
    def join(timeout)
      @thread.join(timeout) || @thread.kill
    end

    private

    def run
      loop do
        break if serve(@native.next_events(WAIT)) == :shutdown # cancels come first
      end
    end

    # Handles `events` in order, cancels first; :shutdown if one said so.
    # Writing a log line gives the GVL away, and taking it back waits behind
    # every busy thread: a cancel that arrives meanwhile is raised before
    # the next line, not after the batch.
    def serve(events)
      result = nil
      until events.empty?
        cancel, other = events.partition { |event| event.is_a?(Native::Cancel) }
        cancel.each { |event| handle(event) }
        # The interrupted jobs need the GVL to stop; let them have it before
        # spending it on log lines.
        Thread.pass unless cancel.empty?
        break if other.empty?

        result = :shutdown if handle(other.first) == :shutdown
        events = other.drop(1).concat(@native.ready_events)
      end
      result
    end

    def handle(event)
      case event
      when Native::Cancel then deliver(event)
      when Native::LogLine then Log.write(@logger, event.level, event.jid, event.message)
      when :gc then collect
      when Native::Recycling then recycling(event)
      when Native::RecycleStep then recycle_step(event)
      when Native::LeaseLost then lease_lost(event.id, event.name, event.reason)
      when :shutdown then :shutdown
      end
    rescue StandardError => e
      # The dispatcher must outlive any single bad event.
      Log.write(@logger, :error, nil, "dispatcher error: #{e.class}: #{e.message}")
    end

    # A full GC before deciding to recycle; the core re-measures after it.
    def collect
      GC.start(full_mark: true, immediate_sweep: true)
    ensure
      @native.memory_gc_done
    end

    def recycling(event)
      return unless @on_recycle

      jobs = event.running.map { |g| { class: g.class_name, jid: g.jid, grew_mb: (g.grew / 1_048_576.0).round(1) } }
      @on_recycle.call(reason: event.reason, rss_mb: (event.bytes / 1_048_576.0).round(1), jobs: jobs)
    end

    def recycle_step(event)
      Instrumentation.emit("recycle") do
        mb = ->(b) { (b / 1_048_576.0).round(1) }
        { state: event.state, reason: event.message, rss_mb: mb.(event.bytes), limit_mb: mb.(event.limit),
          top_growers: event.top_growers.map { |g| { class: g.class_name, jid: g.jid, grew_mb: mb.(g.grew) } } }
      end
    end

    # The holder of lease `id` stops at once: LeaseLost in its thread, and
    # with on_lost: :exit, TERM to this process as well.
    def lease_lost(id, name, reason)
      @lock.synchronize do
        holder = @leases[id]
        return unless holder

        if holder.on_lost == :exit
          Log.write(@logger, :error, nil, "lost lease #{name} (#{reason}); stopping this process (on_lost: :exit) event=lease.exit")
          Process.kill("TERM", Process.pid)
        end
        holder.thread.raise(LeaseLost.new(name: name, reason: reason, id: id))
      end
      Instrumentation.emit("lease_lost") { { name: name, reason: reason } }
    end

    # Raises into the job's thread under the lock its wrapper takes to
    # unregister: once the wrapper has removed the job, no raise can follow.
    def deliver(event)
      klass = event.reason == :timeout ? Timeout : Cancelled
      @jobs.deliver(event.token, klass.new(jid: event.jid, attempt: event.attempt, token: event.token)) do |thread|
        # Before the raise: from it until the job has left, the express
        # lane's kicks leave this thread alone.
        @native.express_unwinding(thread.native_thread_id || 0) if Native::EXPRESS
      end
      return unless event.reason == :cancel

      Instrumentation.emit("cancel_delivered", event.jid) do
        { jid: event.jid, class: event.class_name, attempt: event.attempt,
          latency: Instrumentation.since(event.requested_at) }
      end
    end
  end
end
