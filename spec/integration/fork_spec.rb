# frozen_string_literal: true

# Forking while Killer is busy: a child must never inherit a lock held by a
# parent thread at the instant of fork (the watcher logging, a job
# registering), or its own Killer.start waits forever. Hundreds of forks
# while the parent's watcher logs and jobs are cancelled.
RSpec.describe "forking while the parent's Killer is busy" do
  FORKS = Integer(ENV.fetch("KILLER_FORKS", 300))

  def sleepy_class
    Class.new do
      include Sidekiq::Job
      include Killer::Cancellable
      def self.name = "ForkSleepy"
      def perform(started) = (started << 1; sleep 0.001 while true) # rubocop:disable Style/InfiniteLoop, Style/Semicolon
    end
  end

  it "starts a working Killer in every child, never hanging" do
    start_killer
    klass = sleepy_class
    stop = false
    # Jobs cancelled back to back: the watcher logs (delivery, end) all the time.
    churn = Array.new(Integer(ENV.fetch("KILLER_FORK_CHURN", 8))) do
      Thread.new do
      until stop
        started = Queue.new
        job = klass.new.tap { |j| j.jid = SecureRandom.hex(12) }
        thread = Thread.new { job.perform(started) }
        started.pop
        Killer.cancel(job.jid)
        thread.join(5)
      end
      end
    end
    hung = []
    FORKS.times do |i|
      pid = fork do
        Killer.start
        Killer.cancel("child-#{i}")
        exit!(Killer.configuration.runtime_if_started ? 0 : 3)
      end
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 20
      status = nil
      until (status = Process.wait2(pid, Process::WNOHANG)&.last)
        if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
          hung << i
          Process.kill("KILL", pid)
          Process.wait(pid)
          break
        end
        sleep 0.005
      end
      expect(status.exitstatus).to eq(0) if status
    end
    expect(hung).to be_empty, "#{hung.size} of #{FORKS} children hung in Killer.start"
    RSpec.configuration.reporter.message("  fork stress: #{FORKS} children started Killer while the parent logged, none hung")
  ensure
    stop = true
    churn&.each { |t| t.join(10) }
  end
end
