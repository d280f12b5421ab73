# frozen_string_literal: true

module Killer
  # The command `killer exclusive` runs while it holds a lease, supervised
  # the way an init (dumb-init, tini) supervises its child:
  #
  # - it runs in a process group of its own, and TERM, INT, HUP, QUIT, USR1
  #   and USR2 sent to `killer` are passed on to that group, once (a
  #   supervisor's `kill`, `docker stop`, Ctrl-C), while the lease is kept
  #   and renewed until the command has exited;
  # - on Linux it is asked to get SIGKILL if `killer` itself dies without a
  #   word (SIGKILL, OOM): PR_SET_PDEATHSIG, so it never runs on beside the
  #   next holder. Elsewhere the lease's ttl bounds that case.
  class HeldCommand
    FORWARDED = %w[TERM INT HUP QUIT USR1 USR2].freeze
    # Seconds between TERM and KILL for a command that lost its lease.
    STOP_WAIT = 10
    PR_SET_PDEATHSIG = 1

    # `argv`: the command and its arguments, as after `--`.
    def initialize(argv)
      @argv = argv
      @pid = nil
      @parent = Process.pid
      @pdeathsig = pdeathsig_function
    end

    # The last signal passed on to the command, or nil.
    attr_reader :forwarded

    # Starts the command and waits for it, passing signals on; its
    # Process::Status.
    def run
      previous = FORWARDED.to_h { |sig| [sig, Signal.trap(sig) { |_| forward(sig) }] }
      @pid = fork { exec_in_own_group }
      signal(@forwarded) if @forwarded # arrived before the command existed
      Process.wait2(@pid).last
    ensure
      previous&.each { |sig, handler| Signal.trap(sig, handler || "DEFAULT") }
    end

    # Stops the command (the lease is gone): TERM to its group, KILL after
    # STOP_WAIT seconds, and reaps it.
    def stop
      return unless @pid

      signal("TERM")
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + STOP_WAIT
      until Process.wait2(@pid, Process::WNOHANG)
        if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
          signal("KILL")
          Process.wait2(@pid)
          break
        end
        sleep 0.05
      end
    rescue Errno::ECHILD
      nil
    end

    private

    def forward(sig)
      @forwarded = sig
      signal(sig)
    end

    # To the command's whole group: its own children get it too, as from a
    # terminal.
    def signal(sig)
      Process.kill(sig, -@pid) if @pid
    rescue Errno::ESRCH, Errno::EPERM
      nil
    end

    # In the child: a group of its own, death with the parent, then exec.
    # Nothing here may raise past exec: failures end the child with 127,
    # as a shell does for a command it cannot run.
    def exec_in_own_group
      FORWARDED.each { |sig| Signal.trap(sig, "DEFAULT") }
      Process.setpgid(0, 0)
      if @pdeathsig
        @pdeathsig.call(PR_SET_PDEATHSIG, Signal.list.fetch("KILL"), 0, 0, 0)
        # The parent may have died before the request was in place.
        exit!(137) if Process.ppid != @parent
      end
      exec(*@argv)
    rescue SystemCallError => e
      $stderr.puts "killer: cannot run #{@argv.first}: #{e.message}"
      exit!(127)
    end

    # libc's prctl, on Linux; nil elsewhere (or without Fiddle).
    def pdeathsig_function
      return nil unless RUBY_PLATFORM.include?("linux")

      require "fiddle"
      Fiddle::Function.new(Fiddle::Handle::DEFAULT["prctl"],
                           [Fiddle::TYPE_INT, Fiddle::TYPE_LONG, Fiddle::TYPE_LONG, Fiddle::TYPE_LONG, Fiddle::TYPE_LONG],
                           Fiddle::TYPE_INT)
    rescue LoadError, Fiddle::DLError
      nil
    end
  end
end
