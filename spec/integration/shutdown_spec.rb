# frozen_string_literal: true

require_relative "../support/app"

# Sidekiq's own shutdown (TERM, then its -t timeout and Sidekiq::Shutdown)
# with the killer in the process: it must not interfere.
RSpec.describe "Sidekiq's shutdown with Killer in the process" do
  after { @processes&.each(&:stop) }

  def events = redis.lrange("test:events", 0, -1)
  def count(event, jid) = events.count("#{event}:#{jid}")

  it "raises no Killer::Cancelled after TERM, and never runs a cancelled job Sidekiq pushed back" do
    sidekiq = SidekiqProcess.new(redis_url: TestRedis.url, concurrency: 2, timeout: 3).start
    @processes = [sidekiq]
    stubborn = CancelIgnoringJob.perform_async
    witness = WitnessJob.perform_async(30)
    wait_for(10, "both to start") { count("started", stubborn) == 1 && count("started", witness) == 1 }
    Killer.cancel(stubborn)
    wait_for(10, "the cancel to be ignored") { count("ignored-cancel", stubborn) >= 1 }

    ignored_at_term = count("ignored-cancel", stubborn)
    seconds = sidekiq.stop(within: 10)
    # Sidekiq's -t 3 plus its own pause of up to 3 s for ensure blocks; nothing of ours.
    expect(seconds).to be < 7.5

    # During the 3 s drain a running killer would have raised again every
    # second (grace 1); it stood down at Sidekiq's shutdown event instead.
    expect(count("ignored-cancel", stubborn)).to be <= ignored_at_term + 1
    expect(events).to include("left-Sidekiq::Shutdown:#{witness}")
    expect(events.grep(/\Aleft-Killer/)).to be_empty
    expect(sidekiq.log).to match(/killer: stopped in [\d.]+ ms event=runtime.stopped/)

    # Sidekiq pushed both unfinished jobs back. A new process runs the
    # witness again but never the body of the cancelled job.
    expect(Sidekiq::Queue.new.map(&:jid)).to contain_exactly(stubborn, witness)
    successor = SidekiqProcess.new(redis_url: TestRedis.url, concurrency: 2, timeout: 3).start
    @processes << successor
    wait_for(10, "the witness to run again") { count("started", witness) == 2 }
    wait_for(10, "the cancelled job to be skipped") { successor.log.include?("cancelled before it started") }
    expect(count("started", stubborn)).to eq(1)
    expect(Killer.status(stubborn)).to eq(:cancelled)
    expect(Sidekiq::Queue.new.size).to eq(0)
  end
end
