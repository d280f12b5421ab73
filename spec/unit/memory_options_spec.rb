# frozen_string_literal: true

RSpec.describe Killer::MemoryOptions do
  it "has documented defaults" do
    o = described_class.new(max_rss_mb: 2048)
    expect([o.grace, o.drain_timeout, o.shutdown_wait, o.check_interval, o.min_uptime]).to eq([60, 60, 30, 5, 60])
    expect([o.min_live_processes, o.max_concurrent_restarts, o.gc_before_restart, o.memory_source])
      .to eq([1, 1, true, :rss])
    expect([o.hard_rss_mb, o.max_memory_percent, o.on_recycle]).to eq([nil, nil, nil])
  end

  it "never SIGKILLs before Sidekiq's own timeout + 5 s" do
    o = described_class.new(max_rss_mb: 100, shutdown_wait: 3)
    expect(o.to_native(sidekiq_timeout: 25, hostname: "h", cannot_signal: nil)["kill_after"]).to eq(30.0)
    o = described_class.new(max_rss_mb: 100, shutdown_wait: 90)
    expect(o.to_native(sidekiq_timeout: 25, hostname: "h", cannot_signal: nil)["kill_after"]).to eq(90.0)
  end

  {
    { max_rss_mb: 0 } => /max_rss_mb .* got 0/,
    { max_rss_mb: "2048" } => /max_rss_mb .* got "2048"/,
    {} => /exactly one of max_rss_mb or max_memory_percent/,
    { max_rss_mb: 1, max_memory_percent: 50 } => /exactly one of/,
    { max_memory_percent: 150 } => /max_memory_percent .* got 150/,
    { max_rss_mb: 100, hard_rss_mb: 50 } => /hard_rss_mb must be above max_rss_mb \(100\), got 50/,
    { max_rss_mb: 100, grace: -1 } => /grace .* got -1/,
    { max_rss_mb: 100, check_interval: 0 } => /check_interval .* got 0/,
    { max_rss_mb: 100, min_live_processes: 1.5 } => /min_live_processes must be an Integer >= 0, got 1.5/,
    { max_rss_mb: 100, max_concurrent_restarts: 0 } => /max_concurrent_restarts must be an Integer >= 1, got 0/,
    { max_rss_mb: 100, gc_before_restart: "yes" } => /gc_before_restart must be true or false, got "yes"/,
    { max_rss_mb: 100, memory_source: :heap } => /memory_source must be one of :rss, :rss_anon, :pss, :cgroup, got :heap/,
    { max_rss_mb: 100, on_recycle: "page me" } => /on_recycle must respond to #call, got "page me"/,
    { max_rss_mb: 100, max_rss: 5 } => /unknown Killer::MemoryMiddleware option :max_rss/
  }.each do |options, message|
    it "refuses #{options.inspect}" do
      expect { Killer::MemoryMiddleware.new(options) }.to raise_error(ArgumentError, message)
    end
  end

  it "names the cgroup it looked at when max_memory_percent finds no limit up the hierarchy" do
    limit, why = Killer::Native.cgroup_memory_limit
    skip "this process's memory cgroup has a limit (#{limit} bytes)" if limit

    expect(why).to match(/cgroup v[12] \S+ and every cgroup above it up to the mount set no memory limit|no readable memory cgroup|names no memory cgroup/)
    expect { Killer::MemoryOptions.new(max_memory_percent: 50).soft_bytes }
      .to raise_error(ArgumentError, /max_memory_percent needs a memory cgroup limit, and this process has none: #{Regexp.escape(why)}/)
  end

  it "is validated once per distinct Hash, as Sidekiq builds a middleware per job" do
    options = { max_rss_mb: 512 }
    expect(Killer::MemoryMiddleware.new(options).options).to be(Killer::MemoryMiddleware.new(options).options)
  end
end
