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
    before = killer_keys
    [[], %w[cancel], %w[cancel a b], %w[frob x], %w[status x --wait 1], %w[cancel x --wait soon]].each do |args|
      out, err, code = killer(*args)
      expect(code).to eq(args.empty? ? 0 : 2), "killer #{args.join(" ")}: #{out}#{err}"
      expect(args.empty? ? out : err).to include("Usage: killer")
    end
    expect(killer("cancel", "x" * 2000).last).to eq(2)
    # A forged log line or a terminal escape in what an operator types.
    _, err, code = killer("cancel", "x", "--by", "eve\nE, [2026-11-29] ERROR -- : forged")
    expect([code, err]).to match([2, /by must not contain control characters.*eve\\nE/])
    expect(killer("cancel", "x", "--reason", "\e[31mred").last).to eq(2)
    expect(killer("cancel", "job\r\n1").last).to eq(2)
    expect(killer_keys).to eq(before)
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

  describe "exclusive under a supervisor's signals" do
    def spawn_killer(*args)
      env = { "REDIS_URL" => TestRedis.url, "RUBYLIB" => SidekiqProcess::LIB }
      Process.spawn(env, "ruby", File.expand_path("../../exe/killer", __dir__), *args, err: File::NULL)
    end

    def gone?(pid) = !File.exist?("/proc/#{pid}") || File.read("/proc/#{pid}/stat").split(") ").last.start_with?("Z")

    it "passes TERM on, keeps (and renews) the lease until the command has exited, then exits 128 + 15" do
      dir = Dir.mktmpdir
      # The command takes TERM, then needs 1.5 s to finish: longer than the lease's ttl.
      script = "File.write(#{(dir + "/pid").inspect}, Process.pid.to_s); " \
               "trap('TERM') { File.write(#{(dir + "/term").inspect}, '1'); $stop = true }; " \
               "sleep 0.01 until $stop; sleep 1.5; File.write(#{(dir + "/done").inspect}, '1')"
      pid = spawn_killer("exclusive", "held-on", "--ttl", "1", "--", "ruby", "-e", script)
      wait_for(15, "the command to run") { File.exist?("#{dir}/pid") }
      Process.kill("TERM", pid)
      wait_for(5, "the command to get TERM") { File.exist?("#{dir}/term") }
      held = []
      status = wait_for(15, "killer to exit") do
        held << redis.exists?("killer:v1:lease:held-on") unless File.exist?("#{dir}/done")
        Process.wait2(pid, Process::WNOHANG)&.last
      end
      expect(File.exist?("#{dir}/done")).to be(true) # it finished its work
      expect(held.size).to be > 10
      expect(held).to all(be(true)) # held all along, though 1.5 s > ttl
      expect(status.exitstatus).to eq(143)
      expect(redis.exists?("killer:v1:lease:held-on")).to be(false) # released after
    ensure
      Process.kill("KILL", pid) if pid && !status rescue nil # rubocop:disable Style/RescueModifier
    end

    it "passes INT, HUP and USR1 on too, once each" do
      dir = Dir.mktmpdir
      script = "File.write(#{(dir + "/pid").inspect}, Process.pid.to_s); got = []; " \
               "%w[INT HUP USR1].each { |s| trap(s) { got << s } }; sleep 0.01 until got.size >= 3; sleep 0.3; " \
               "File.write(#{(dir + "/got").inspect}, got.join(' ')); exit 3"
      pid = spawn_killer("exclusive", "signals", "--", "ruby", "-e", script)
      wait_for(15, "the command to run") { File.exist?("#{dir}/pid") }
      %w[INT HUP USR1].each do |sig|
        Process.kill(sig, pid)
        sleep 0.1 # the command counts what arrives; signals of one kind do not queue
      end
      status = wait_for(15, "killer to exit") { Process.wait2(pid, Process::WNOHANG)&.last }
      expect(File.read("#{dir}/got")).to eq("INT HUP USR1")
      expect(status.exitstatus).to eq(128 + Signal.list["USR1"])
    end

    it "leaves no command behind when killer itself is SIGKILLed" do
      dir = Dir.mktmpdir
      pid = spawn_killer("exclusive", "killed", "--ttl", "1", "--", "ruby", "-e",
                         "File.write(#{(dir + "/pid").inspect}, Process.pid.to_s); sleep 60")
      wait_for(15, "the command to run") { File.exist?("#{dir}/pid") }
      child = Integer(File.read("#{dir}/pid"))
      Process.kill("KILL", pid)
      Process.wait(pid)
      wait_for(10, "the command to die with it (PR_SET_PDEATHSIG)") { gone?(child) }
    ensure
      Process.kill("KILL", child) if child && !gone?(child) rescue nil # rubocop:disable Style/RescueModifier
    end
  end

  it "says what to check when Redis cannot be reached, with status 1" do
    _, err, code = killer("status", "abc", redis_url: "redis://127.0.0.1:1/0")
    expect(code).to eq(1)
    expect(err).to match(/killer: cannot reach Redis/)
  end
end
