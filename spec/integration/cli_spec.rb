# frozen_string_literal: true

require "open3"
require "tmpdir"
require_relative "../support/app"

# The `killer` command, run as a user would, against a real sidekiq process.
RSpec.describe "the killer command" do
  include_context "a sidekiq process", concurrency: 2

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
    expect(killer("cancel", "audited", "--by", "ops", "--reason", "runaway")).to eq(["requested\n", "", 0])
    expect(Killer.status("audited", verbose: true)).to include(by: "ops", reason: "runaway")
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

  describe "exclusive" do
    it "runs the command while holding the lease and exits with its status" do
      out, err, code = killer("exclusive", "cli-a", "--ttl", "1", "--", "ruby", "-e", "print :ran; exit 7")
      expect([out, code]).to eq(["ran", 7]), err
      expect(redis.exists?("killer:v1:lease:cli-a")).to be(false)
    end

    it "does not run the command while another holds the lease (status 4)" do
      redis.set("killer:v1:lease:cli-b", "someone", px: 5000)
      out, err, code = killer("exclusive", "cli-b", "--", "ruby", "-e", "print :ran")
      expect([out, code]).to eq(["", 4])
      expect(err).to include("lease cli-b is held elsewhere")
    end

    it "stops the command within one renewal period when the lease is taken away" do
      pid_file = File.join(Dir.mktmpdir, "pid")
      Thread.new do
        sleep 0.05 until File.exist?(pid_file)
        redis.set("killer:v1:lease:cli-c", "thief")
      end
      t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      _, err, code = killer("exclusive", "cli-c", "--ttl", "0.9", "--", "ruby", "-e",
                            "File.write(#{pid_file.inspect}, Process.pid.to_s); sleep 30")
      expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0).to be < 4 # ruby boots twice; the loss takes <= 0.3 s
      expect(code).to eq(143)
      expect(err).to include("lost lease cli-c: another holder has it")
      expect { Process.kill(0, Integer(File.read(pid_file))) }.to raise_error(Errno::ESRCH)
    end
  end

  it "says what to check when Redis cannot be reached, with status 1" do
    _, err, code = killer("status", "abc", redis_url: "redis://127.0.0.1:1/0")
    expect(code).to eq(1)
    expect(err).to match(/killer: cannot reach Redis/)
  end
end
