# frozen_string_literal: true

RSpec.describe "Killer.exclusive" do
  def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  def lease_key(name) = "killer:v1:lease:#{name}"

  # A holder in its own thread: records when it was stopped and by what.
  def hold(name, ttl:, **options)
    Thread.new do
      Thread.current.report_on_exception = false
      Killer.exclusive(name, ttl: ttl, **options) { sleep 30 }
    rescue Killer::LeaseLost => e
      [e, now]
    end
  end

  it "runs the block while holding the lease, releases it after, and returns the block's value" do
    start_killer
    value = Killer.exclusive("report", ttl: 2) do
      expect(redis.pttl(lease_key("report"))).to be_between(1, 2000)
      :done
    end
    expect(value).to eq(:done)
    expect(redis.exists?(lease_key("report"))).to be(false)
  end

  it "lets exactly one of two contenders run; the other returns false at once, or waits and takes over" do
    start_killer
    ran = Queue.new
    first = Thread.new { Killer.exclusive("sched", ttl: 1) { ran << :first; sleep 1.2; :first_done } }
    sleep 0.1 until ran.size == 1
    t0 = now
    expect(Killer.exclusive("sched", ttl: 1) { ran << :second }).to be(false)
    expect(now - t0).to be < 0.2
    # Held across more than one ttl: renewed meanwhile.
    expect(Killer.exclusive("sched", ttl: 1, wait: true) { ran << :waiter; :waited }).to eq(:waited)
    expect(first.value).to eq(:first_done)
    expect(Array.new(ran.size) { ran.pop }).to eq(%i[first waiter])
  end

  it "gives up waiting after `wait` seconds" do
    start_killer
    holder = hold("busy", ttl: 1)
    sleep 0.1 until redis.exists?(lease_key("busy"))
    t0 = now
    expect(Killer.exclusive("busy", ttl: 1, wait: 0.5) { :never }).to be(false)
    expect(now - t0).to be_between(0.5, 10) # never before `wait`; the holder keeps it 30 s
    holder.kill
  end

  it "stops the holder with LeaseLost within one renewal period when another takes the key" do
    start_killer
    seen = Queue.new
    Killer.subscribe { |name, payload| seen << [name, payload] if name.start_with?("lease_") }
    holder = hold("stolen", ttl: 0.9)
    sleep 0.05 until redis.exists?(lease_key("stolen"))
    t0 = now
    redis.set(lease_key("stolen"), "someone else")
    error, stopped = holder.value
    expect(error).to be_a(Killer::LeaseLost)
    expect(error.message).to match(/lost lease stolen: another holder has it/)
    expect(stopped - t0).to be < 0.3 + 0.15
    expect(redis.get(lease_key("stolen"))).to eq("someone else") # release never deletes another's key
    # Killer.subscribe, in a plain Ruby process: taken, then lost, once each.
    wait_for(5, "lease_lost") { seen.size == 2 }
    expect(Array.new(seen.size) { seen.pop }).to eq([["lease_acquired", { name: "stolen", ttl: 0.9 }],
                                                     ["lease_lost", { name: "stolen", reason: error.reason }]])
  end

  it "keeps the lease through a dropped connection (a failover, a proxy's restart): the renewal is retried" do
    log = capture_log
    start_killer(poll_interval: 30) # the renewal, not the poll, meets the dropped connection first
    holder = hold("resilient", ttl: 1.5)
    sleep 0.05 until redis.exists?(lease_key("resilient"))
    token = redis.get(lease_key("resilient"))
    # Every connection but this spec's, as a failover or a restarted proxy drops them.
    redis.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    wait_for(10, "the renewal to meet the dropped connection") { log.string.match?(/lease resilient: renewal|lost lease/) }
    wait_for(10, "a renewal on a new connection") { redis.pttl(lease_key("resilient")) > 1200 }
    expect(holder).to be_alive
    expect(log.string).to include("retrying on a new connection")
    expect(redis.get(lease_key("resilient"))).to eq(token)
    expect(log.string).not_to include("lost lease resilient")
    holder.kill
  end

  it "stops the holder when Redis goes away" do
    server = RedisServer.new.start
    Killer.configure do |c|
      c.redis_url = server.url
      c.network_timeout = 0.3
    end
    Killer.start
    holder = hold("fragile", ttl: 0.9)
    sleep 0.05 until server.redis.exists?(lease_key("fragile"))
    t0 = now
    server.stop
    error, stopped = holder.value
    expect(error).to be_a(Killer::LeaseLost)
    expect(error.reason).to match(/renewal (failed|took longer)/)
    expect(stopped - t0).to be < 10 # told, not left holding a lease it no longer has
  ensure
    server&.stop
  end

  it "rejects bad arguments with ArgumentError naming the value, writing nothing" do
    start_killer
    before = killer_keys
    expect { Killer.exclusive("", ttl: 5) { 1 } }.to raise_error(ArgumentError, /lease name.*""/)
    expect { Killer.exclusive(:sym, ttl: 5) { 1 } }.to raise_error(ArgumentError, /lease name.*:sym/)
    expect { Killer.exclusive("x", ttl: 0.1) { 1 } }.to raise_error(ArgumentError, /ttl.*0.1/)
    expect { Killer.exclusive("x", ttl: 5, wait: "yes") { 1 } }.to raise_error(ArgumentError, /wait.*"yes"/)
    expect { Killer.exclusive("x", ttl: 5, on_lost: :ignore) { 1 } }.to raise_error(ArgumentError, /on_lost.*:ignore/)
    expect { Killer.exclusive("x", ttl: 5) }.to raise_error(ArgumentError, /needs a block/)
    expect(killer_keys).to eq(before)
  end
end
