# frozen_string_literal: true

require_relative "../support/app"

# Stories told against a real redis-server and a real `sidekiq` process.
RSpec.describe "cancelling jobs in a real Sidekiq process" do
  include_context "a sidekiq process"

  def started?(jid) = events.include?("started:#{jid}")
  def wait_started(jid) = wait_for(10, "#{jid} to start") { started?(jid) }

  it "stops a running job; the process goes on with the next job" do
    jid = SleepyJob.perform_async(60)
    wait_started(jid)
    expect(Killer.cancel(jid, wait: 5)).to eq(:cancelled) # how fast: bench/cancel_latency.rb
    wait_for(5, "the job's ensure") { redis.hget("test:stopped_at", jid) }
    expect(events).not_to include("finished:#{jid}")

    after = QuickJob.perform_async
    wait_for(10, "the next job") { events.include?("finished:#{after}") }
    expect(sidekiq_stats).to include(failed: 0, retries: 0, dead: 0)
    expect(@sidekiq.alive?).to be(true)
  end

  it "writes who asked and why in the job's log line, and keeps them with its status" do
    jid = SleepyJob.perform_async(60)
    wait_started(jid)
    expect(Killer.cancel(jid, wait: 5, by: "alice", reason: "stuck export")).to eq(:cancelled)
    await_log_lines(@sidekiq, /killer: cancel requested by alice \(stuck export\); raising Killer::Cancelled/, level: "INFO", jid: jid)
    expect(Killer.status(jid, verbose: true))
      .to include(state: :cancelled, by: "alice", reason: "stuck export", cancelled_at: kind_of(Time))
  end

  it "never runs the body of a scheduled job cancelled before it starts" do
    jid = SleepyJob.perform_in(1, 1)
    expect(Killer.cancel(jid)).to be(true)
    wait_for(15, "the scheduled job to be skipped") { Killer.status(jid) == :cancelled }
    expect(started?(jid)).to be(false)
    await_log_lines(@sidekiq, /cancelled before it started/, jid: jid)
    expect(sidekiq_stats).to include(failed: 0, retries: 0, dead: 0)
  end

  it "is not swallowed by `rescue => e` in the job" do
    jid = SwallowingJob.perform_async
    wait_started(jid)
    expect(Killer.cancel(jid, wait: 5)).to eq(:cancelled)
    expect(events.grep(/swallowed/)).to be_empty
  end

  it "stops a CPU-bound job that never sleeps or does IO" do
    jid = CpuJob.perform_async
    wait_started(jid)
    expect(Killer.cancel(jid, wait: 5)).to eq(:cancelled)
    # The process still has all its threads: run five jobs at once.
    jids = Array.new(5) { QuickJob.perform_async(50) }
    wait_for(10, "five jobs") { jids.all? { |j| events.include?("finished:#{j}") } }
  end

  it "raises again after grace when a job rescues Exception, logging the jid" do
    jid = StubbornJob.perform_async(1)
    wait_started(jid)
    expect(Killer.cancel(jid, wait: 8)).to eq(:cancelled)
    expect(events).to include("ignored-Killer::Cancelled:#{jid}")
    await_log_lines(@sidekiq, /killer: job still running .* raising again/, level: "WARN", jid: jid)
  end

  it "acknowledges a cancelled job: not retried, not dead, not failed, still processed" do
    before = Sidekiq::Stats.new.processed
    jid = SleepyJob.perform_async(60)
    wait_started(jid)
    Killer.cancel(jid, wait: 5)
    # Sidekiq writes its counters at its next heartbeat (5 s in 6.x, 10 s in 7 and 8).
    wait_for(25, "processed count") { Sidekiq::Stats.new.processed > before }
    expect(sidekiq_stats).to include(failed: 0, retries: 0, dead: 0)
    expect(Sidekiq::Queue.new.size).to eq(0)
    expect(Sidekiq::Workers.new.map { |_, _, w| w["payload"]["jid"] }).not_to include(jid)
  end

  it "answers :finished for a job that had already finished" do
    jid = QuickJob.perform_async
    wait_for(10) { events.include?("finished:#{jid}") }
    expect(Killer.cancel(jid, wait: 5)).to eq(:finished)
  end

  it "writes its log lines in Sidekiq's log with the jid" do
    jid = SleepyJob.perform_async(60)
    wait_started(jid)
    Killer.cancel(jid, wait: 5)
    await_log_lines(@sidekiq, /killer: job stopped by Killer::Cancelled event=cancel.done class=SleepyJob/, level: "INFO", jid: jid)
  end
end

RSpec.describe "CancelMiddleware in a real Sidekiq process" do
  around do |example|
    sidekiq = SidekiqProcess.new(redis_url: TestRedis.url, env: { "KILLER_TEST_MIDDLEWARE" => "1" }).start
    @sidekiq = sidekiq
    example.run
  ensure
    sidekiq&.stop
  end

  it "makes a class without Killer::Cancellable cancellable" do
    jid = PlainJob.perform_async(60)
    wait_for(10) { redis.lrange("test:events", 0, -1).include?("started:#{jid}") }
    expect(Killer.cancel(jid, wait: 5)).to eq(:cancelled)
    expect(sidekiq_stats).to include(failed: 0, retries: 0, dead: 0)
  end
end

RSpec.describe "a Sidekiq process while Redis restarts" do
  it "keeps running, reconnects, and then applies cancels" do
    server = RedisServer.new.start
    sidekiq = SidekiqProcess.new(redis_url: server.url, concurrency: 2).start
    Killer.configure { |c| c.redis_url = server.url }
    jid = with_sidekiq_redis(url: server.url) { SleepyJob.perform_async(60) }
    wait_for(10) { server.redis.lrange("test:events", 0, -1).include?("started:#{jid}") }

    port = server.port
    server.stop
    wait_for(15, "the process to notice") { sidekiq.log.include?("cannot reach Redis") }
    expect(sidekiq.alive?).to be(true)
    server = RedisServer.new(port).start
    # The restarted Redis is empty: the job is still running in the process.
    expect(Killer.cancel(jid, wait: 15)).to eq(:cancelled)
    expect(sidekiq.log).to match(/cannot reach Redis/)
    expect(sidekiq.log).to match(/Redis reachable again/)
  ensure
    sidekiq&.stop
    server&.stop
  end
end

RSpec.describe "Sidekiq's shutdown with Killer running" do
  def exit_time(app, job_class)
    sidekiq = SidekiqProcess.new(redis_url: TestRedis.url, app: app).start
    jid = Sidekiq::Client.push("class" => job_class, "args" => [])
    wait_for(10, "a job to run") { redis.lrange("test:events", 0, -1).include?("finished:#{jid}") }
    [sidekiq.stop(within: 15), sidekiq.log]
  end

  it "stops the watcher and dispatcher on TERM without delaying exit" do
    plain, = exit_time(File.expand_path("../support/plain_app.rb", __dir__), "PlainHelloJob")
    with_killer, log = exit_time(SidekiqProcess::APP, "QuickJob")
    expect(log).to include("killer: watching for cancels")
    expect(log).to include("Bye!")
    expect(log).not_to match(/killer:.*(ERROR|did not stop)/)
    # Sidekiq's own exit varies by up to its 2 s fetch timeout from run to
    # run, so compare what Killer adds: the time its stop took.
    stop_ms = Float(log[/killer: stopped in ([\d.]+) ms/, 1])
    # Bounded by design (1 s for each thread at most); how fast it is in
    # practice is bench/shutdown_time.rb's.
    expect(stop_ms).to be < 2500
    RSpec.configuration.reporter.message(
      format("  exit on TERM: %.2f s with Killer (its stop: %.1f ms), %.2f s without", with_killer, stop_ms, plain)
    )
  end
end
