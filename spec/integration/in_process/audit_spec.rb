# frozen_string_literal: true

RSpec.describe "the audit trail of cancels" do
  def history = redis.lrange("killer:v1:history", 0, -1).map { |r| JSON.parse(r) }

  it "keeps who asked and why with the request, shown by status(verbose: true)" do
    expect(Killer.cancel("audited", by: "alice", reason: "stuck export")).to be(true)
    details = Killer.status("audited", verbose: true)
    expect(details).to include(state: :requested, by: "alice", reason: "stuck export")
    expect(details[:requested_at]).to be_within(5).of(Time.now)
    expect(Killer.status("never", verbose: true)).to be_nil
    # A second request keeps the first requester and the state, and counts itself.
    Killer.cancel("audited", by: "bob", reason: "me too")
    expect(Killer.status("audited", verbose: true))
      .to include(by: "alice", reason: "stuck export", requests: 2, last_by: "bob", last_reason: "me too",
                  last_at: kind_of(Time))
    expect(history.map { |r| r.values_at("jid", "by", "reason") }).to eq([["audited", "alice", "stuck export"]])
  end

  it "is not flooded by one jid cancelled again and again: one record, counted" do
    Killer.cancel("first", by: "alice")
    1000.times { Killer.cancel("again", by: "mallory") }
    expect(history.map { |r| r["jid"] }).to eq(%w[again first])
    expect(Killer.status("again", verbose: true)).to include(requests: 1000, by: "mallory")
  end

  it "refuses control characters (forged log lines, terminal escapes) and bad encodings, writing nothing" do
    before = killer_keys
    expect { Killer.cancel("x", by: "eve\nE, [2026-11-29] ERROR -- : forged") }
      .to raise_error(ArgumentError, /by must not contain control characters.*eve\\nE/)
    expect { Killer.cancel("x", reason: "\e[31mred") }.to raise_error(ArgumentError, /reason must not contain control/)
    expect { Killer.cancel("job\r\n1") }.to raise_error(ArgumentError, /jid must not contain control/)
    expect { Killer.cancel("x", by: "\xFF".b) }.to raise_error(ArgumentError, /by must be valid UTF-8/)
    expect { Killer.cancel("\xFE".b) }.to raise_error(ArgumentError, /jid must be valid UTF-8/)
    expect { Killer.exclusive("\xFF".b) { nil } }.to raise_error(ArgumentError, /lease name must be valid UTF-8/)
    expect { Killer.exclusive("lease\n") { nil } }.to raise_error(ArgumentError, /lease name must not contain control/)
    expect(Killer.configuration.runtime_if_started).to be_nil # refused before starting anything
    expect(killer_keys).to eq(before)
    expect(Killer.cancel("caf\u00e9".b, by: "zo\u00eb".b)).to be(true) # UTF-8 bytes in a binary String are fine
  end

  it "keeps at most MAX_CANCELS requests, in Redis and in a running process: oldest out first, one warning each" do
    cap = Killer::Native::MAX_CANCELS
    # A full record, as `cap` earlier cancels leave it (written directly: a
    # cancel at a time takes a minute); the process loads it at start.
    now = (Time.now.to_f * 1000).to_i - 1000
    redis.call("ZADD", "killer:v1:cancels", *(0...cap).flat_map { |i| [now - cap + i, "storm-#{i}"] })
    redis.pipelined do |p|
      cap.times { |i| p.call("HSET", "killer:v1:status:storm-#{i}", "state", "requested", "requested_at", now - cap + i) }
    end
    log = capture_log
    start_killer
    3.times { |i| Killer.cancel("storm-#{cap + i}") }
    expect(redis.zcard("killer:v1:cancels")).to eq(cap)
    expect((0..2).map { |i| Killer.status("storm-#{i}") }).to eq([nil, nil, nil]) # dropped with their status
    expect(Killer.status("storm-3")).to eq(:requested)
    expect(Killer.status("storm-#{cap + 2}")).to eq(:requested)
    expect(log_lines(log.string, /more than #{cap} cancel requests are recorded.*event=cancel.cap/).size).to eq(1)
    # The running process's copy meets the same cap. A job cancelled after
    # the storm stops only once its cancel is heard, after every earlier one.
    started = Queue.new
    job = Class.new do
      include Sidekiq::Worker
      include Killer::Cancellable
      define_method(:perform) { started << 1; sleep 0.01 while true } # rubocop:disable Style/InfiniteLoop
      def self.name = "StormJob"
    end.new.tap { |j| j.jid = "after-the-storm" }
    thread = Thread.new { Thread.current.report_on_exception = false; job.perform }
    started.pop
    Killer.cancel(job.jid)
    expect(thread.join(60)).to be_truthy
    # The dispatcher raises before it writes the log lines that came with
    # the raise: await the line, then count it.
    wait_for(10, "the process's warning") { log.string.include?("cancel requests are known") }
    expect(log_lines(log.string, /more than #{cap} cancel requests are known/).size).to eq(1)
  end

  it "names the OS user at this host when `by` is not given" do
    Killer.cancel("default-by")
    expect(Killer.status("default-by", verbose: true)[:by]).to match(/\A.+@#{Regexp.escape(Socket.gethostname)}\z/)
  end

  it "is bounded: the newest 1000 records, expiring with cancel_ttl" do
    1005.times { |i| Killer.cancel("bulk-#{i}") }
    expect(redis.llen("killer:v1:history")).to eq(1000)
    expect(history.first["jid"]).to eq("bulk-1004")
    expect(redis.pttl("killer:v1:history")).to be_between(86_000_000, 86_400_000)
  end

  it "refuses a bad by or reason with ArgumentError naming it, writing nothing" do
    before = killer_keys
    expect { Killer.cancel("x", by: 42) }.to raise_error(ArgumentError, /by must be a String, got 42/)
    expect { Killer.cancel("x", by: "a" * 201) }.to raise_error(ArgumentError, /by must be at most 200 bytes/)
    expect { Killer.cancel("x", reason: :why) }.to raise_error(ArgumentError, /reason must be a String, got :why/)
    expect { Killer.cancel("x", reason: "r" * 1001) }.to raise_error(ArgumentError, /reason must be at most 1000 bytes/)
    expect { Killer.status("x", verbose: "yes") }.to raise_error(ArgumentError, /verbose.*"yes"/)
    expect(killer_keys).to eq(before)
  end
end
