# frozen_string_literal: true

require "open3"
require_relative "../support/app"

# The `killer` command, run as a user would, against a real sidekiq process.
RSpec.describe "the killer command" do
  before(:all) do
    TestRedis.flush
    @sidekiq = SidekiqProcess.new(redis_url: TestRedis.url, concurrency: 2).start
  end

  after(:all) { @sidekiq&.stop }

  before { wait_for(15, "heartbeat") { @sidekiq.identity } }

  def killer(*args, redis_url: TestRedis.url)
    out, err, status = Open3.capture3({ "REDIS_URL" => redis_url, "RUBYLIB" => SidekiqProcess::LIB }, "ruby", File.expand_path("../../exe/killer", __dir__), *args)
    [out, err, status.exitstatus]
  end

  it "cancels a running job and waits for it to stop; status tells what became of it" do
    jid = SleepyJob.perform_async(60)
    wait_for(10, "the job to start") { redis.lrange("test:events", 0, -1).include?("started:#{jid}") }
    expect(killer("cancel", jid, "--wait", "5")).to eq(["cancelled\n", "", 0])
    expect(killer("status", jid)).to eq(["cancelled\n", "", 0])
    expect(killer("status", "never-cancelled")).to eq(["none\n", "", 0])
  end

  it "answers 3 when --wait runs out with the job not reached" do
    expect(killer("cancel", "queued-nowhere", "--wait", "0.2")).to eq(["requested\n", "", 3])
  end

  it "refuses bad usage with status 2, writing nothing to Redis" do
    before = redis.dbsize
    [[], %w[cancel], %w[cancel a b], %w[frob x], %w[status x --wait 1], %w[cancel x --wait soon]].each do |args|
      out, err, code = killer(*args)
      expect(code).to eq(args.empty? ? 0 : 2), "killer #{args.join(" ")}: #{out}#{err}"
      expect(args.empty? ? out : err).to include("Usage: killer")
    end
    expect(killer("cancel", "x" * 2000).last).to eq(2)
    expect(redis.dbsize).to eq(before)
  end

  it "says what to check when Redis cannot be reached, with status 1" do
    _, err, code = killer("status", "abc", redis_url: "redis://127.0.0.1:1/0")
    expect(code).to eq(1)
    expect(err).to match(/killer: cannot reach Redis/)
  end
end
