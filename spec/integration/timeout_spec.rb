# frozen_string_literal: true

require_relative "../support/app"

# Deadlines, told against a real redis-server and a real `sidekiq` process.
RSpec.describe "per-job deadlines in a real Sidekiq process" do
  include_context "a sidekiq process"

  it "stops a job past its timeout with Killer::Timeout and retries it; its neighbour runs to the end" do
    neighbour = SleepyJob.perform_async(2)
    late = DeadlineJob.perform_async(30)
    wait_for(10, "both to start") { events.include?("started:#{late}") && events.include?("started:#{neighbour}") }
    retried = wait_for(10, "the retry") { Sidekiq::RetrySet.new.find_job(late) }
    expect(retried.item).to include("error_class" => "Killer::Timeout", "retry_count" => 0)
    expect(retried.item["error_message"]).to match(/job #{late} ran past its timeout/)
    expect(events).not_to include("finished:#{late}")
    wait_for(10, "the neighbour to finish") { events.include?("finished:#{neighbour}") }
    expect(log_lines(@sidekiq.log, /killer: job ran past its timeout of 1.0s; raising Killer::Timeout/, level: "WARN", jid: late))
      .not_to be_empty
    expect(@sidekiq.alive?).to be(true)
  end

  it "ends a job past its timeout without a retry when on_timeout is :discard" do
    jid = DiscardedDeadlineJob.perform_async(30)
    wait_for(10, "it to start") { events.include?("started:#{jid}") }
    wait_for(10, "the discard line") { @sidekiq.log.include?("DiscardedDeadlineJob stopped by Killer::Timeout; discarded") }
    wait_for(10, "Sidekiq to finish it") { log_lines(@sidekiq.log, /elapsed=\S+\b.*\bdone\b/, jid: jid).any? }
    expect(events).not_to include("finished:#{jid}")
    # Acknowledged as done: not failed, not retried, not dead.
    expect(log_lines(@sidekiq.log, /elapsed=\S+\b.*\bfail\b/, jid: jid)).to be_empty
    expect(Sidekiq::RetrySet.new.find_job(jid)).to be_nil
    expect(Sidekiq::DeadSet.new.find_job(jid)).to be_nil
  end

  it "escapes a payload's control characters in its log lines: a jid cannot forge a line or a terminal escape" do
    jid = "j\nE, [2026-11-29] ERROR -- : forged \e[2J"
    Sidekiq::Client.push("class" => "DiscardedDeadlineJob", "args" => [30], "jid" => jid)
    escaped = 'jid=j\nE, [2026-11-29] ERROR -- : forged \e[2J'
    wait_for(20, "the discard line, its jid escaped") do
      log_lines(@sidekiq.log, /stopped by Killer::Timeout; discarded/).any? { |line| line.include?(escaped) }
    end
    killer_lines = @sidekiq.log.lines.grep(/killer:/)
    expect(killer_lines).not_to be_empty
    expect(killer_lines.join).not_to include("\e[2J", "\nE, [2026-11-29]")
  end
end
