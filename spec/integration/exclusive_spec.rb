# frozen_string_literal: true

require "json"

# Lease holders as separate processes, against the real Redis.
RSpec.describe "Killer.exclusive across processes" do
  # A holder: takes the lease, then records a beat in Redis every 20 ms.
  let(:holder_script) { <<~RUBY }
    require "killer"
    Killer.configure { |c| c.logger = Logger.new($stderr) }
    Sidekiq.logger.level = Logger::WARN
    options = JSON.parse(ARGV[1], symbolize_names: true)
    options[:on_lost] = options[:on_lost].to_sym if options[:on_lost]
    begin
      Killer.exclusive(ARGV[0], **options) do
        loop do
          Sidekiq.redis { |r| r.rpush("test:beats:\#{ARGV[0]}", "\#{Process.pid} \#{Process.clock_gettime(Process::CLOCK_MONOTONIC)}") }
          sleep 0.02
        end
      end
    rescue Killer::LeaseLost => e
      Sidekiq.redis { |r| r.rpush("test:lost:\#{ARGV[0]}", Process.clock_gettime(Process::CLOCK_MONOTONIC).to_s) }
      sleep 5 # still alive: a TERM (on_lost: :exit) must end it
      exit 3
    end
  RUBY

  def spawn_holder(name, **options)
    pid = Process.spawn({ "REDIS_URL" => TestRedis.url, "RUBYLIB" => SidekiqProcess::LIB },
                        "ruby", "-rjson", "-e", holder_script, name, JSON.generate(options), err: File::NULL)
    (@pids ||= []) << pid
    pid
  end

  # [[pid, at], ...] of every beat so far.
  def beats(name) = redis.lrange("test:beats:#{name}", 0, -1).map { |b| pid, at = b.split; [Integer(pid), Float(at)] }
  def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

  after do
    (@pids || []).each do |pid|
      Process.kill("KILL", pid)
      Process.wait(pid)
    rescue Errno::ESRCH, Errno::ECHILD
      nil
    end
  end

  it "a holder paused past its ttl stops within one renewal period of waking; the waiter took over" do
    holder = spawn_holder("paused", ttl: 0.9)
    wait_for(10, "the holder to work") { beats("paused").size >= 3 }
    Process.kill("STOP", holder)
    waiter = spawn_holder("paused", ttl: 0.9, wait: true)
    wait_for(10, "the waiter to take over once the lease expired") { beats("paused").any? { |pid, _| pid == waiter } }
    resumed = now
    Process.kill("CONT", holder)
    lost_at = Float(wait_for(5, "the paused holder to learn it lost") { redis.lindex("test:lost:paused", 0) })
    expect(lost_at - resumed).to be < 0.3 + 0.2
    sleep 0.3
    expect(beats("paused").select { |pid, at| pid == holder && at > lost_at }).to be_empty
    expect(beats("paused").last.first).to eq(waiter) # only the waiter works now
  end

  it "on_lost: :exit stops the process with TERM" do
    holder = spawn_holder("leader", ttl: 0.9, on_lost: :exit)
    wait_for(10, "the holder to work") { beats("leader").size >= 3 }
    redis.set("killer:v1:lease:leader", "usurper")
    _, status = Process.wait2(holder)
    expect(status.termsig).to eq(Signal.list.fetch("TERM"))
  end
end
