# frozen_string_literal: true

require "json"
require "tmpdir"
require_relative "../support/app"

# A supervisor starts two sidekiq processes, one with exit_with_parent, and
# dies by SIGKILL (no chance to stop its children).
RSpec.describe "exit_with_parent" do
  # The supervisor: starts each sidekiq, prints their pids, waits forever.
  let(:supervisor) { <<~RUBY }
    envs = JSON.parse(ARGV[0])
    pids = envs.map.with_index do |env, i|
      spawn(env, "sidekiq", "-r", #{SidekiqProcess::APP.inspect}, "-c", "2", "-t", "1", "-q", "q\#{i}",
            out: File.join(ARGV[1], "sidekiq-\#{i}.log"), err: %i[child out])
    end
    puts pids.join(" ")
    $stdout.flush
    sleep
  RUBY

  def gone?(pid)
    File.read("/proc/#{pid}/stat").split(") ").last.start_with?("Z") # reparented, not yet reaped
  rescue Errno::ENOENT, Errno::ESRCH
    true
  end

  def heartbeating?(pid)
    redis.smembers("processes").any? { |id| redis.hget(id, "info")&.include?("\"pid\":#{pid}") }
  end

  after do
    (@children || []).each { |pid| Process.kill("KILL", pid) unless gone?(pid) rescue nil } # rubocop:disable Style/RescueModifier
    if @supervisor
      Process.kill("KILL", @supervisor) rescue nil # rubocop:disable Style/RescueModifier
      Process.wait(@supervisor) rescue nil # rubocop:disable Style/RescueModifier
    end
  end

  it "stops the process whose parent died, gracefully and within bounds; the other one is left alone" do
    dir = Dir.mktmpdir("killer-parent")
    base = { "REDIS_URL" => TestRedis.url, "RUBYLIB" => SidekiqProcess::LIB, "KILLER_TEST_POLL" => "0.2" }
    envs = [base.merge("KILLER_TEST_EXIT_WITH_PARENT" => "1"), base]
    reader, writer = IO.pipe
    @supervisor = Process.spawn("ruby", "-rjson", "-e", supervisor, JSON.generate(envs), dir, out: writer)
    writer.close
    @children = reader.gets.split.map(&:to_i)
    watched, unwatched = @children
    wait_for(20, "both to heartbeat") { @children.all? { |pid| heartbeating?(pid) } }
    busy = Sidekiq::Client.push("class" => BusyJob, "args" => [0.5], "queue" => "q0")
    wait_for(10, "the busy job") { redis.lrange("test:events", 0, -1).include?("busy-started-#{watched}:#{busy}") }

    Process.kill("KILL", @supervisor)
    Process.wait(@supervisor)
    @supervisor = nil
    # One poll (1 s) and Sidekiq's own stop (-t 1, plus its short pauses);
    # 30 s only bounds a slow machine.
    wait_for(30, "the orphan to stop") { gone?(watched) }

    log = File.read(File.join(dir, "sidekiq-0.log"))
    expect(log).to match(/killer: parent process \d+ exited; stopping with TERM \(exit_with_parent\)/)
    expect(log).to include("Bye!") # Sidekiq's own graceful stop, not a kill
    expect(redis.lrange("test:events", 0, -1)).to include("busy-finished-#{watched}:#{busy}") # drained
    # The other one still works: it runs a job pushed after the orphan left.
    later = Sidekiq::Client.push("class" => BusyJob, "args" => [0.01], "queue" => "q1")
    wait_for(15, "the other process to run a job") do
      redis.lrange("test:events", 0, -1).include?("busy-finished-#{unwatched}:#{later}")
    end
    expect(gone?(unwatched)).to be(false)
    expect(File.read(File.join(dir, "sidekiq-1.log"))).not_to include("parent process")
  end
end
