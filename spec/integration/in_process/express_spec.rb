# frozen_string_literal: true

require "securerandom"

# The GVL express lane (Ruby >= 3.3): chosen when the extension is built,
# on by default, and sharing the VM's postponed jobs with profilers. How
# fast it stops a CPU-bound job is measured in bench/cpu_cancel.rb, not
# asserted here.
RSpec.describe "the GVL express lane" do
  def cpu_job
    Class.new do
      include Sidekiq::Worker
      include Killer::Cancellable
      def self.name = "ExpressSpecJob"

      def perform(started)
        started << true
        x = 0
        loop { x += 1 }
      end
    end
  end

  # Ignores cancels until `done` is closed, so the lane keeps kicking for
  # the whole grace; sleeps, so the kicks land on the other threads.
  def stubborn_job
    Class.new do
      include Sidekiq::Worker
      include Killer::Cancellable
      def self.name = "ExpressSpecStubbornJob"

      def perform(started, done)
        started << true
        until done.closed?
          begin
            sleep 0.001
          rescue Killer::Cancelled
            nil
          end
        end
      end
    end
  end

  it "is built in exactly on Rubies that have rb_postponed_job_trigger (3.3 and newer)" do
    expect(Killer::Native::EXPRESS).to eq(Gem::Version.new(RUBY_VERSION) >= Gem::Version.new("3.3"))
  end

  it "stops a CPU-bound job while StackProf samples the process with its own postponed jobs" do
    begin
      require "stackprof"
    rescue LoadError
      skip "StackProf is not installed (Debian's ruby-stackprof)"
    end
    start_killer(grace: 5)
    job = cpu_job.new.tap { |j| j.jid = SecureRandom.hex(12) }
    started = Queue.new
    profile = StackProf.run(mode: :cpu, interval: 500, raw: true) do
      runner = Thread.new do
        Thread.current.report_on_exception = false
        job.perform(started)
      end
      started.pop
      # StackProf samples every 500 µs of the process's CPU time: a cancel
      # the lane delivers in a millisecond could leave it none to take.
      cpu = -> { Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) }
      from = cpu.()
      wait_for(10, "the job to burn 20 ms of CPU") { cpu.() - from > 0.02 }
      Killer.cancel(job.jid)
      expect(runner.value).to be_nil # acknowledged: Killer::Cancelled ended it
    end
    expect(profile[:samples]).to be > 0
    # The status is written by the watcher after the job ends.
    expect(wait_for(10, "the cancelled status") { Killer.status(job.jid) == :cancelled && :cancelled }).to eq(:cancelled)
  end

  # A kick runs between two C calls of whatever thread holds the GVL; Ruby
  # 3.3 reads errno after a read that succeeded, and raised
  # IO::TimeoutError ("Blocking operation timed out!") on the ETIMEDOUT a
  # parked thread's timed wait left there: Sidekiq's CLI died so in its
  # signal pipe's `gets` (shutdown_spec, once in seven runs).
  it "leaves errno as it found it: IO in the threads it kicks never fails" do
    start_killer(grace: 1.5)
    job = stubborn_job.new.tap { |j| j.jid = SecureRandom.hex(12) }
    started = Queue.new
    done = Queue.new
    runner = Thread.new { job.perform(started, done) }
    started.pop
    to_echo, echo_in = IO.pipe
    echo_out, from_echo = IO.pipe
    echo = Thread.new do
      while (line = to_echo.gets)
        from_echo.write(line)
      end
    end
    Killer.cancel(job.jid)
    # The lane kicks for the grace (1.5 s) while the job ignores the cancel.
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 1.2
    trips = 0
    while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
      echo_in.write("ping\n")
      expect(echo_out.gets).to eq("ping\n")
      trips += 1
    end
    expect(trips).to be > 100
  ensure
    echo_in&.close
    echo&.join(5)
    [to_echo, echo_out, from_echo].each { |io| io&.close }
    done&.close
    runner&.join(5)
  end
end
