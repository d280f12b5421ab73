# frozen_string_literal: true

RSpec.describe "Killer.memory_status" do
  it "is nil where MemoryMiddleware does not run, and names the jobs that grew the process" do
    expect(Killer.memory_status).to be_nil
    start_killer
    chain = Sidekiq::Middleware::Chain.new { |c| c.add Killer::MemoryMiddleware, max_rss_mb: 100_000 }
    keep = []
    chain.invoke(Object.new, { "jid" => "small", "class" => "Small" }, "q") { keep << "x" * (5 << 20) }
    expect { chain.invoke(Object.new, { "jid" => "raiser", "class" => "Raiser" }, "q") { keep << "y" * (40 << 20); raise "boom" } }
      .to raise_error("boom")
    status = Killer.memory_status
    expect(status).to include(limit_mb: 100_000.0, state: :running, busy: 0, reason: nil)
    expect(status[:rss_mb]).to be > 40
    # A job that raised is measured too (the check runs in ensure).
    expect(status[:top_growers].first).to include(class: "Raiser", jid: "raiser")
    expect(status[:top_growers].first[:grew_mb]).to be > 30
  end

  it "never signals a process that is not the sidekiq command (embedded or a test)" do
    expect(Killer::SidekiqInfo.cannot_signal).to match(/will not signal this process/)
  end
end
