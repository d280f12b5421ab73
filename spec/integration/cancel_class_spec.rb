# frozen_string_literal: true

require "open3"
require_relative "../support/app"

# The kill switch for a whole class, in an incident: a real Sidekiq running
# 10 SyncJobs and 10 OtherJobs; Killer.cancel_class stops every SyncJob and
# none of the others, keeps new SyncJobs from running their body, and lets
# them run again once resumed.
RSpec.describe "Killer.cancel_class in a real Sidekiq process" do
  include_context "a sidekiq process", concurrency: 22

  def state(jid) = redis.hget("killer:v1:status:#{jid}", "state")
  def started?(jid) = events.include?("started:#{jid}")

  def killer(*args)
    out, err, status = Open3.capture3({ "REDIS_URL" => TestRedis.url, "RUBYLIB" => SidekiqProcess::LIB },
                                      "ruby", File.expand_path("../../exe/killer", __dir__), *args)
    [out, err, status.exitstatus]
  end

  after { Killer.switches.each { |s| Killer.resume_class(s[:class]) } }

  it "stops every running job of the class and none of the others, skips new ones, and resumes" do
    sync = Array.new(10) { SyncJob.perform_async(60) }
    other = Array.new(10) { OtherJob.perform_async(60) }
    wait_for(20, "all 20 to start") { (sync + other).all? { |jid| started?(jid) } }

    seen = []
    Killer.subscribe { |name, payload| seen << [name, payload] if name.start_with?("class_") }
    ends = Killer.cancel_class("SyncJob", for: 60, by: "ops@example", reason: "partner outage")
    expect(ends).to be_within(5).of(Time.now + 60)
    wait_for(10, "every SyncJob to stop") { sync.all? { |jid| state(jid) == "cancelled" } }
    expect(await_log_lines(@sidekiq, /class SyncJob cancelled by ops@example \(partner outage\); raising Killer::Cancelled/,
                           level: "INFO", jid: sync.first)).not_to be_empty
    expect(await_log_lines(@sidekiq, /killer: classes cancelled now: SyncJob/, level: "INFO")).not_to be_empty
    expect(other.map { |jid| state(jid) }.uniq).to eq([nil])
    expect(sync.map { |jid| redis.hexists("test:stopped_at", jid) }.uniq).to eq([true])
    expect(other.map { |jid| redis.hexists("test:stopped_at", jid) }.uniq).to eq([false])
    expect(Killer.switches).to match([include(class: "SyncJob", by: "ops@example", reason: "partner outage")])

    # During the switch: acknowledged without running their body.
    queued = Array.new(100) { SyncJob.perform_async(60) }
    wait_for(30, "the 100 new SyncJobs to be skipped") { queued.all? { |jid| state(jid) == "cancelled" } }
    expect(queued.none? { |jid| started?(jid) }).to be(true)
    expect(Sidekiq::Queue.new.size).to eq(0)
    expect(Sidekiq::RetrySet.new.size + Sidekiq::DeadSet.new.size).to eq(0)
    expect(await_log_lines(@sidekiq, /class SyncJob is cancelled by ops@example \(partner outage\); not running this job/,
                           jid: queued.last)).not_to be_empty

    # A resume reaches each process like a cancel (milliseconds); a job
    # fetched before that instant is still skipped. The process says when.
    lifted = -> { log_lines(@sidekiq.log, /killer: no class is cancelled now/, level: "INFO").size }
    before = lifted.call
    expect(Killer.resume_class(SyncJob)).to be(true)
    expect(Killer.resume_class("SyncJob")).to be(false)
    expect(Killer.switches).to eq([])
    expect(seen).to eq([["class_cancelled", { class: "SyncJob", for: 60.0, by: "ops@example", reason: "partner outage" }],
                        ["class_resumed", { class: "SyncJob", by: Killer::Validation.default_requester }],
                        ["class_resumed", { class: "SyncJob", by: Killer::Validation.default_requester }]])
    wait_for(10, "the process to learn of the resume") { lifted.call > before }
    after_resume = SyncJob.perform_async(0.1)
    wait_for(10, "a SyncJob enqueued after the resume to finish") { events.include?("finished:#{after_resume}") }
    other.each { |jid| Killer.cancel(jid) }
  end

  it "is driven from the command line, and every bad input is an ArgumentError that writes nothing" do
    out, err, code = killer("cancel-class", "OtherJob", "--for", "1h", "--by", "cli", "--reason", "drill")
    expect([err, code]).to eq(["", 0])
    expect(out).to match(/\AOtherJob cancelled until \d{4}-\d\d-\d\dT/)
    expect(killer("switches").first).to match(/\AOtherJob\t\S+\tcli\tdrill\n\z/)
    # A record written around Killer (by hand, an older version) prints escaped.
    record = JSON.parse(redis.hget("killer:v1:switches", "OtherJob"))
    redis.call("HSET", "killer:v1:switches", "OtherJob", JSON.generate(record.merge("reason" => "a\nforged\e[2J")))
    expect(killer("switches").first).to match(/\AOtherJob\t\S+\tcli\ta\\nforged\\e\[2J\n\z/)
    expect(killer("resume-class", "OtherJob")).to eq(["OtherJob resumed\n", "", 0])
    _, err, code = killer("cancel-class", "OtherJob")
    expect([err.lines.first, code]).to eq(["killer: --for DURATION is required (90s, 30m, 1h, 2d)\n", 2])
    expect(killer("cancel-class", "OtherJob", "--for", "soon").last).to eq(2)

    before = killer_keys
    [[nil, 60], ["", 60], ["Sync\nJob", 60], ["x" * 2000, 60], ["SyncJob", 0], ["SyncJob", -1],
     ["SyncJob", 31 * 86_400], ["SyncJob", "1h"]].each do |klass, seconds|
      expect { Killer.cancel_class(klass, for: seconds) }.to raise_error(ArgumentError), [klass, seconds].inspect
    end
    expect { Killer.cancel_class("SyncJob", for: 60, reason: "a\e[31m") }.to raise_error(ArgumentError, /control characters/)
    expect(killer_keys).to eq(before)
  end
end
