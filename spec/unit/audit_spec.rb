# frozen_string_literal: true

RSpec.describe "the audit trail of cancels" do
  def history = redis.lrange("killer:v1:history", 0, -1).map { |r| JSON.parse(r) }

  it "keeps who asked and why with the request, shown by status(verbose: true)" do
    expect(Killer.cancel("audited", by: "alice", reason: "stuck export")).to be(true)
    details = Killer.status("audited", verbose: true)
    expect(details).to include(state: :requested, by: "alice", reason: "stuck export")
    expect(details[:requested_at]).to be_within(5).of(Time.now)
    expect(Killer.status("never", verbose: true)).to be_nil
    # A second request neither replaces the first requester nor the state.
    Killer.cancel("audited", by: "bob", reason: "me too")
    expect(Killer.status("audited", verbose: true)).to include(by: "alice", reason: "stuck export")
    expect(history.first(2).map { |r| r.values_at("jid", "by", "reason") })
      .to eq([%w[audited bob me\ too], ["audited", "alice", "stuck export"]])
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
    before = redis.dbsize
    expect { Killer.cancel("x", by: 42) }.to raise_error(ArgumentError, /by must be a String, got 42/)
    expect { Killer.cancel("x", by: "a" * 201) }.to raise_error(ArgumentError, /by must be at most 200 bytes/)
    expect { Killer.cancel("x", reason: :why) }.to raise_error(ArgumentError, /reason must be a String, got :why/)
    expect { Killer.cancel("x", reason: "r" * 1001) }.to raise_error(ArgumentError, /reason must be at most 1000 bytes/)
    expect { Killer.status("x", verbose: "yes") }.to raise_error(ArgumentError, /verbose.*"yes"/)
    expect(redis.dbsize).to eq(before)
  end
end
