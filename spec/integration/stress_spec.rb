# frozen_string_literal: true

require_relative "../support/app"

# Cancels fired at random moments around job ends must stop only the
# targeted job, and never surface outside a job's body.
RSpec.describe "stress: cancels racing job ends" do
  it "in one process, 20,000 back-to-back jobs on 8 threads: no stray exception, no wrong job" do
    start_killer
    klass = Class.new do
      include Killer::Cancellable
      attr_accessor :jid
      def self.name = "RaceJob"

      def perform(spin)
        spin.times { Thread.pass } # a few microseconds to a few hundred
        :done
      end
    end
    rng = Random.new(ENV.fetch("SEED", 1234).to_i)
    total = 20_000
    jobs = Array.new(total) { |i| ["race-#{i}", rng.rand(0..200)] }
    targeted = jobs.each_with_index.select { |_, i| rng.rand < 0.3 }.map { |(jid, _), _| jid }.to_set
    queue = Queue.new
    jobs.each { |j| queue << j }
    started = Queue.new
    results = {}
    leaks = []
    lock = Mutex.new

    workers = Array.new(8) do
      Thread.new do
        loop do
          jid, spin = begin
            queue.pop(true)
          rescue ThreadError
            break
          end
          begin
            started << jid if targeted.include?(jid)
            job = klass.new.tap { |j| j.jid = jid }
            value = job.perform(spin)
            lock.synchronize { results[jid] = value }
          rescue Exception => e # rubocop:disable Lint/RescueException
            # Anything here reached code outside a job's body.
            lock.synchronize { leaks << [jid, e] }
          end
        end
      rescue Exception => e # rubocop:disable Lint/RescueException
        lock.synchronize { leaks << [:worker_loop, e] }
      end
    end
    canceller = Thread.new do
      client = Killer.configuration.client
      while workers.any?(&:alive?) || !started.empty?
        jid = begin
          started.pop(true)
        rescue ThreadError
          sleep 0.0005
          next
        end
        sleep(rng.rand * 0.001) # before, during or just after the job's end
        client.cancel(jid, "stress", "") # the native client: no default `by`
      end
    end
    workers.each(&:join)
    canceller.join

    stopped = results.select { |_, v| v.nil? }.keys
    expect(leaks).to be_empty
    expect(results.size).to eq(total)
    expect(results.values.uniq - [:done, nil]).to be_empty
    expect(stopped - targeted.to_a).to be_empty
    statuses = redis.pipelined { |p| jobs.each { |jid, _| p.hget("killer:v1:status:#{jid}", "state") } }
    wrongly_marked = jobs.map(&:first).zip(statuses).select { |jid, s| s == "cancelled" && !targeted.include?(jid) }
    expect(wrongly_marked).to be_empty
    # The race was real: some targets were stopped mid-body, others had already finished.
    expect(stopped.size).to be > 50
    expect(targeted.size - stopped.size).to be > 50
    RSpec.configuration.reporter.message(
      "  in-process stress: #{total} jobs, #{targeted.size} targeted, #{stopped.size} stopped mid-body, " \
      "#{targeted.size - stopped.size} finished first, 0 leaks, 0 wrong jobs"
    )
  end

  it "through a real Sidekiq process, 5,000 short jobs with cancels at random moments" do
    sidekiq = SidekiqProcess.new(redis_url: TestRedis.url, concurrency: 10).start
    processed_before = Sidekiq::Stats.new.processed
    rng = Random.new(ENV.fetch("SEED", 4321).to_i)
    total = 5_000
    args = Array.new(total) { [rng.rand * 10] }
    jids = Sidekiq::Client.push_bulk("class" => RaceJob, "args" => args)
    targeted = jids.select { rng.rand < 0.3 }
    target_set = targeted.to_set
    watcher = SpecRedis.new(url: TestRedis.url)
    seen = 0
    firing = []
    # Follow the jobs as they start; fire at a random moment in or just past
    # each targeted job's 0-10 ms body, each from its own thread so a slow
    # cancel never delays the next one.
    while seen < total
      _, jid = watcher.blpop("test:started", timeout: 10)
      break unless jid

      seen += 1
      next unless target_set.include?(jid)

      delay = rng.rand * 0.012
      # Arguments, not the loop's variables: `while` shares one scope.
      firing << Thread.new(jid, delay) do |target, pause|
        sleep(pause)
        Killer.cancel(target)
      end
    end
    firing.each(&:join)
    wait_for(120, "the queue to drain") { Sidekiq::Queue.new.size.zero? && Sidekiq::Workers.new.size.zero? }
    # Sidekiq writes its counters (processed, failed) at its next heartbeat.
    wait_for(30, "Sidekiq's counters") { Sidekiq::Stats.new.processed >= processed_before + total }

    finished = redis.lrange("test:events", 0, -1).map { |e| e.delete_prefix("finished:") }.to_set
    statuses = redis.pipelined { |p| jids.each { |jid| p.hget("killer:v1:status:#{jid}", "state") } }
    by_jid = jids.zip(statuses).to_h
    cancelled = by_jid.select { |_, s| s == "cancelled" }.keys

    expect(cancelled - targeted).to be_empty, "wrong jobs stopped: #{(cancelled - targeted).first(5)}"
    untargeted = jids - targeted
    expect(untargeted.reject { |j| finished.include?(j) }).to be_empty
    expect(jids.reject { |j| finished.include?(j) || by_jid[j] == "cancelled" }).to be_empty
    expect(sidekiq_stats).to include(failed: 0, retries: 0, dead: 0)
    expect(sidekiq.log).not_to match(/Job raised exception|Internal exception|Killer::Cancelled:/)
    expect(seen).to eq(total)
    # The race was real: both outcomes happened many times.
    expect(cancelled.size).to be > 50
    expect((targeted & finished.to_a).size).to be > 50
    RSpec.configuration.reporter.message(
      "  sidekiq stress: #{total} jobs, #{targeted.size} targeted, #{cancelled.size} cancelled " \
      "(#{(targeted & finished.to_a).size} reached their last line), 0 failed/retried/dead, 0 wrong jobs"
    )
  ensure
    watcher&.close
    sidekiq&.stop
  end
end
