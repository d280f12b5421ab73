# frozen_string_literal: true

module SpecHelpers
  # `what` names the condition in the timeout's message; a lambda is called
  # then, for a message that shows the state at the timeout (a log).
  def wait_for(seconds = 10, what = "condition")
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
    loop do
      value = yield
      return value if value
      if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
        raise "timed out after #{seconds}s waiting for #{what.respond_to?(:call) ? what.call : what}"
      end

      sleep 0.01
    end
  end

  def redis = TestRedis.redis

  # Cancels `ids`, then returns once a Sidekiq process has heard of them:
  # it hears cancels in the order they were sent, so when the cancel of
  # `running` (a cancellable job running there), sent after them, has
  # reached that job, theirs have arrived too. A job pushed before that
  # could be fetched while its cancel is still on its way and start as a
  # running job (README: a cancel sent in the instant its job is fetched).
  def cancel_before_start(*ids, running:)
    ids.each { |id| expect(Killer.cancel(id)).to be(true) }
    Killer.cancel(running, wait: 10)
  end

  # How many keys Killer's API wrote in the suite's Redis (Sidekiq's own
  # keys come and go with its heartbeats, Killer's process reports with
  # report_interval).
  def killer_keys = redis.call("KEYS", "killer:*").grep_v(/\Akiller:v1:process:/).size

  # A logger whose output the example can read.
  def capture_log
    io = StringIO.new
    Killer.configuration.logger = Logger.new(io)
    io
  end

  # Configures Killer for fast tests and starts this process's runtime.
  def start_killer(poll_interval: 0.2, grace: 0.3)
    Killer.configure do |c|
      c.poll_interval = poll_interval
      c.grace = grace
    end
    Killer.start
    # Ready once the watcher has subscribed.
    wait_for(5, "the watcher to subscribe") { redis.pubsub("numsub", "killer:v1:cancel").last.to_i >= 1 }
  end

  # Runs the block with Sidekiq's Redis set to `options` (built by
  # Sidekiq's own RedisConnection), through each version's public API:
  # Sidekiq.redis= in 6, Sidekiq::Client.via in 7 and 8.
  def with_sidekiq_redis(options)
    pool = Sidekiq::RedisConnection.create(options)
    return Sidekiq::Client.via(pool) { yield } unless Sidekiq.respond_to?(:redis=)

    original = Sidekiq.redis_pool
    begin
      Sidekiq.redis = pool
      yield
    ensure
      Sidekiq.redis = original
    end
  end

  # The lines of a Sidekiq log (6 and 7: `... jid=J class=C INFO: text`;
  # 8: `INFO  ... jid=J class=C: text`, colored) that are at `level`, carry
  # `jid` if given, and match `pattern`.
  def log_lines(log, pattern, level: nil, jid: nil)
    log.gsub(/\e\[[\d;]*m/, "").lines.select do |line|
      (jid.nil? || line.include?("jid=#{jid}")) && (level.nil? || line.match?(/\b#{level}\b/)) && line.match?(pattern)
    end
  end

  # The core's log lines reach Sidekiq's logger through a dispatcher thread,
  # after the status the test has just seen: await them, never read once.
  def await_log_lines(process, pattern, level: nil, jid: nil, seconds: 10)
    wait_for(seconds, "a log line matching #{pattern.inspect}") do
      lines = log_lines(process.log, pattern, level: level, jid: jid)
      lines unless lines.empty?
    end
  end

  def sidekiq_stats
    s = Sidekiq::Stats.new
    { processed: s.processed, failed: s.failed, retries: s.retry_size, dead: s.dead_size }
  end
end
