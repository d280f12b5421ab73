# frozen_string_literal: true

RSpec.describe "per-job deadlines (Killer::Timeout)" do
  def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

  # A cancellable job that sleeps in small steps for `seconds`, logging
  # whether its body finished.
  def job_class(killer: nil, &body)
    Class.new do
      include Sidekiq::Worker
      include Killer::Cancellable
      sidekiq_options(killer: killer) if killer
      define_method(:perform, &body)
      def self.name = "DeadlineJob"
    end
  end

  def sleeper(**options)
    job_class(**options) do |seconds, log|
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
      sleep 0.005 while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
      log << :finished
      :done
    end
  end

  def with_jid(klass) = klass.new.tap { |j| j.jid = SecureRandom.hex(12) }

  it "raises Killer::Timeout out of perform past the deadline (a failure Sidekiq retries); its neighbour runs on" do
    start_killer
    log = Queue.new
    neighbour = Thread.new { with_jid(sleeper).perform(1.0, log) }
    t0 = now
    expect { with_jid(sleeper(killer: { timeout: 0.3 })).perform(30, []) }.to raise_error(Killer::Timeout, /ran past its timeout/)
    expect(now - t0).to be_between(0.3, 10) # never before the deadline; the job would sleep 30 s
    expect(neighbour.value).to eq(:done)
    expect(log.pop).to eq(:finished)
    expect(Killer.configuration.runtime.running).to eq(0)
  end

  it "ends the job quietly with on_timeout: :discard, and logs it with the jid" do
    io = capture_log
    start_killer
    log = []
    job = with_jid(sleeper(killer: { "timeout" => 0.2, "on_timeout" => "discard" }))
    expect(job.perform(30, log)).to be_nil
    expect(log).to be_empty
    expect(io.string).to match(/killer: DeadlineJob stopped by Killer::Timeout; discarded \(on_timeout: :discard\) event=timeout.discarded jid=#{job.jid}/)
    wait_for(2, "the core's log line") { io.string.include?("ran past its timeout of 0.2s") }
  end

  it "applies Killer.configuration.default_timeout and on_timeout to jobs without their own" do
    Killer.configure do |c|
      c.default_timeout = 0.2
      c.on_timeout = :discard
    end
    start_killer
    t0 = now
    expect(with_jid(sleeper).perform(30, [])).to be_nil
    expect(now - t0).to be < 10 # the job would sleep 30 s
  end

  it "leaves a job that finishes in time alone, then and later" do
    start_killer
    log = []
    job = with_jid(sleeper(killer: { timeout: 0.3 }))
    expect(job.perform(0.05, log)).to eq(:done)
    expect { sleep 0.5 }.not_to raise_error
    expect(log).to eq([:finished])
  end

  it "raises Killer::Timeout from Killer.checkpoint! inside Killer.critical once the deadline passed" do
    start_killer
    job = with_jid(job_class(killer: { timeout: 0.1 }) do
      Killer.critical do
        sleep 0.3
        Killer.checkpoint!
        :not_reached
      end
    end)
    expect { job.perform }.to raise_error(Killer::Timeout)
  end

  it "rejects bad deadline options with ArgumentError naming the value, before the body runs" do
    start_killer
    ran = []
    { { timeout: -1 } => /timeout must be a number of seconds.*-1/,
      { timeout: "soon" } => /timeout.*"soon"/,
      { on_timeout: :explode } => /on_timeout must be :retry or :discard, got :explode/,
      { timeot: 5 } => /unknown sidekiq_options killer: key "timeot"/ }.each do |options, message|
      job = with_jid(job_class(killer: options) { ran << :body })
      expect { job.perform }.to raise_error(ArgumentError, message)
    end
    expect(ran).to be_empty
    expect { Killer.configure { |c| c.default_timeout = 0 } }.to raise_error(ArgumentError, /default_timeout.*0/)
    expect { Killer.configure { |c| c.on_timeout = :kill } }.to raise_error(ArgumentError, /on_timeout.*:kill/)
  end
end
