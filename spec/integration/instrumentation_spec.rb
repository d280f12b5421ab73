# frozen_string_literal: true

require "json"
require "open3"
require "securerandom"
require "active_support"
require "active_support/notifications"
require_relative "../support/app"

# Killer's events as a Rails app's metrics see them: a real `sidekiq`
# process whose initializer subscribes with ActiveSupport::Notifications
# (and Killer.subscribe, and one subscriber that always raises), jobs
# cancelled from this process, and what each subscriber received.
RSpec.describe "instrumentation events in a real Sidekiq process" do
  before(:all) do
    TestRedis.flush
    @sidekiq = SidekiqProcess.new(redis_url: TestRedis.url, env: { "KILLER_TEST_NOTIFICATIONS" => "1" }).start
  end

  after(:all) { @sidekiq&.stop }

  def events = redis.lrange("test:events", 0, -1)
  def received(list = "test:notifications") = redis.lrange(list, 0, -1).map { |e| JSON.parse(e) }
  def of(name, jid, list = "test:notifications") = received(list).select { |n, p| n == name && p["jid"] == jid }.map(&:last)

  # The cancel_done of `jid` once it arrived, alone of its kind.
  def done(jid)
    wait_for(10, "cancel_done.killer for #{jid}") { of("cancel_done.killer", jid).any? }
    expect(of("cancel_done.killer", jid).size).to eq(1)
    of("cancel_done.killer", jid).first
  end

  it "sends cancel_requested in the caller, then cancel_delivered and cancel_done in the process, once each" do
    requested = []
    listener = ActiveSupport::Notifications.subscribe("cancel_requested.killer") { |*, payload| requested << payload }
    jid = SleepyJob.perform_async(30)
    wait_for(10, "the job to start") { events.include?("started:#{jid}") }
    Killer.cancel(jid, by: "ops@example", reason: "stuck export")
    expect(requested).to eq([{ jid: jid, by: "ops@example", reason: "stuck export" }])

    expect(done(jid)).to include("jid" => jid, "class" => "SleepyJob", "outcome" => "cancelled")
    expect(done(jid)["latency"]).to be_between(0, 5)
    delivered = of("cancel_delivered.killer", jid)
    expect(delivered.size).to eq(1)
    expect(delivered.first).to include("jid" => jid, "class" => "SleepyJob", "attempt" => 1)
    expect(delivered.first["latency"]).to be_between(0, 5)
    # Killer.subscribe got the same events, with the same payloads.
    wait_for(5, "Killer.subscribe's copy") { of("cancel_done", jid, "test:subscribed").any? }
    expect(of("cancel_delivered", jid, "test:subscribed")).to eq(delivered)
    # The subscriber that raises is logged with the jid and broke nothing.
    expect(wait_for(10, "the cancelled status") { Killer.status(jid) == :cancelled && :cancelled }).to eq(:cancelled)
    expect(await_log_lines(@sidekiq, /a subscriber of cancel_delivered.killer raised RuntimeError: a broken metrics client/,
                           level: "ERROR", jid: jid)).not_to be_empty
  ensure
    ActiveSupport::Notifications.unsubscribe(listener) if listener
  end

  it "tells a job skipped before its start from one that finished first" do
    shrugged = ShrugJob.perform_async
    wait_for(10, "it to start") { events.include?("started:#{shrugged}") }
    skipped = "skip-#{SecureRandom.hex(6)}"
    cancel_before_start(skipped, running: shrugged)
    expect(done(shrugged)).to include("class" => "ShrugJob", "outcome" => "finished_first")
    expect(events).to include("shrugged:#{shrugged}")

    Sidekiq::Client.push("class" => "SleepyJob", "args" => [30], "jid" => skipped)
    expect(done(skipped)).to include("class" => "SleepyJob", "outcome" => "skipped_before_start")
    expect(events).not_to include("started:#{skipped}")
  end

  it "sends timeout with the job's deadline and what it does" do
    jid = DeadlineJob.perform_async(30)
    wait_for(10, "timeout.killer") { of("timeout.killer", jid).any? }
    expect(of("timeout.killer", jid)).to eq([{ "jid" => jid, "class" => "DeadlineJob", "timeout" => 1.0,
                                               "on_timeout" => "retry" }])
    expect(of("cancel_done.killer", jid)).to be_empty # a deadline is not a cancel
  end

  it "loads nothing of ActiveSupport in an app without it, and Killer.subscribe refuses what it cannot call" do
    script = 'require "killer"; print defined?(ActiveSupport).inspect; ' \
             'begin; Killer.subscribe(42); rescue ArgumentError => e; print " ", e.message; end'
    out, err, status = Open3.capture3({ "RUBYLIB" => SidekiqProcess::LIB }, RbConfig.ruby, "-e", script)
    expect(status).to be_success, err
    expect(out).to eq("nil Killer.subscribe needs a block or a callable, got 42")
  end
end
