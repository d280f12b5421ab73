# frozen_string_literal: true

require "json"
require "fileutils"
require_relative "../support/app"

# memory_source: :cgroup as a container or a systemd service sees it: the
# process's own memory cgroup, its working set against the limit. This
# machine mounts the cgroup v1 memory controller read-write: the spec makes
# a child cgroup under its own, with a limit, and starts a real `sidekiq`
# in it (removed afterwards). Layouts this machine does not have (v2,
# systemd nesting, hybrid) are the core's unit tests (cgroup.rs).
RSpec.describe "memory_source: :cgroup in a memory cgroup of its own" do
  LIMIT = 800 << 20

  # The v1 memory controller's directory for this process, if writable.
  def self.own_memory_cgroup
    path = File.read("/proc/self/cgroup")[/^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(.*)$/, 1]
    point = File.read("/proc/self/mountinfo").lines.map(&:split).find do |f|
      f[f.index("-") + 1] == "cgroup" && f.last.split(",").include?("memory")
    end&.at(4)
    dir = path && point && File.join(point, path)
    dir if dir && File.writable?(dir)
  rescue SystemCallError
    nil
  end

  before(:all) do
    parent = self.class.own_memory_cgroup
    skip "no writable cgroup v1 memory controller here" unless parent
    TestRedis.flush
    @cgroup = File.join(parent, "killer-spec-#{Process.pid}")
    FileUtils.mkdir_p(@cgroup)
    File.write(File.join(@cgroup, "memory.limit_in_bytes"), LIMIT.to_s)
    memory = { memory_source: "cgroup", max_memory_percent: 50, grace: 0.5, check_interval: 0.2, min_uptime: 0,
               drain_timeout: 5, shutdown_wait: 0, min_live_processes: 1, gc_before_restart: false }
    @contained = SidekiqProcess.new(redis_url: TestRedis.url, concurrency: 2, timeout: 1, queues: %w[cg],
                                    env: { "KILLER_TEST_MEMORY" => JSON.generate(memory) }, cgroup: @cgroup).start
    @other = SidekiqProcess.new(redis_url: TestRedis.url, concurrency: 2).start
    @file = File.join(Dir.tmpdir, "killer-page-cache-#{Process.pid}")
  end

  after(:all) do
    @contained&.stop
    @other&.stop
    FileUtils.rm_f(@file) if @file
    Dir.rmdir(@cgroup) if @cgroup && Dir.exist?(@cgroup)
  end

  def report(pid)
    key = redis.call("KEYS", "killer:v1:process:*:#{pid}").first
    key && JSON.parse(redis.get(key).to_s)["memory"]
  end

  it "counts the working set: page cache the kernel can reclaim does not recycle the process" do
    # 500 MB written here, then dropped from the cache, so the job's read
    # is what brings it in, charged to the job's cgroup.
    File.open(@file, "wb") do |f|
      chunk = "k" * (1 << 20)
      500.times { f.write(chunk) }
      f.fsync
      f.advise(:dontneed)
    end
    pid = @contained.pid
    Sidekiq::Client.push("class" => "PageCacheJob", "args" => [@file], "queue" => "cg")
    wait_for(60, "the file to be read") { redis.lrange("test:events", 0, -1).any? { |e| e.start_with?("read-#{pid}") } }
    # Usage (page cache included) above the 400 MB limit; the working set under it.
    memory = wait_for(15, "a report with the page cache in the cgroup's usage") do
      m = report(pid)
      m if m && m["cgroup"] && m["cgroup"]["usage"] > LIMIT / 2
    end
    expect(memory["cgroup"]).to include("version" => 1, "dir" => @cgroup, "limit" => LIMIT, "limit_dir" => @cgroup)
    expect(memory["cgroup"]["working_set"]).to be < LIMIT / 2
    expect(memory["bytes"]).to eq(memory["cgroup"]["working_set"])
    expect(memory["soft"]).to eq(LIMIT / 2)
    expect(memory["state"]).to eq("running")
    expect(@contained).to be_alive
  end

  it "recycles the process whose heap passes half the cgroup's limit, while another carries on" do
    grow = Sidekiq::Client.push("class" => "GrowJob", "args" => [450, 5], "queue" => "cg")
    status = @contained.wait_exit_status(60)
    expect(status).not_to be_nil, "the contained process should recycle:\n#{@contained.log}"
    # The limit named as it was set: a share of the cgroup's.
    expect(@contained.log).to match(/memory \d+ MB is over max_memory_percent 50% \(400 MB\)/)
    expect(@contained.log).to include("GrowJob jid=#{grow}")
    expect(@other).to be_alive
    later = QuickJob.perform_async
    wait_for(10, "the other process to run a job") { redis.lrange("test:events", 0, -1).include?("finished:#{later}") }
  end
end
